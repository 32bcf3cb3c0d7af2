"""One module per command group; ``roost.cli`` discovers them. Each defines ``register(subparsers)``."""
