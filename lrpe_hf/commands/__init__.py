"""Sub-commands of ``lrpe-hf``; each module defines ``register(subparsers)``."""
