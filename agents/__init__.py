"""Agents: inert configuration, the runner (an async generator of CoT events),
models, the loan agent and the Faust worker."""
