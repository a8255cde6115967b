"""Benchmarks behind ``flightrec bench``. Each module defines ``register(subparsers)``
for one ``flightrec bench NAME`` command; results are ratios measured in one run. A
module whose name starts with ``_`` is a helper of a bench, not a bench."""
