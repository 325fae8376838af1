"""Training and text-generation entry points built on Trainer (above data, metrics and models; below the CLI)."""
