"""The flight recorder: CoT events to Kafka, ordered, hash-chained, PII-guarded, traced."""
