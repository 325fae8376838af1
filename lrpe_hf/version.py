"""The package version, in a module of its own so self-contained remote-code bundles can carry it."""

__version__ = "0.1.0"
