"""Replay: rebuild, verify and re-evaluate recorded decisions from the Kafka log."""
