"""The package version, in a module of its own so self-contained remote-code bundles can carry it."""

__version__ = "0.3.0"

#: The Transformers releases `make test-compat` verifies (the same range as pyproject.toml; a test keeps them equal).
SUPPORTED_TRANSFORMERS = ">=5.23,<5.25"
