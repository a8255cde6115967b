"""Sub-commands of ``flightrec``. Each module defines ``register(subparsers)``;
the CLI discovers them, so adding a command touches one file."""
