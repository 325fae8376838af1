"""Transformers wrappers, one sub-package per ``model_type`` (config, modeling, processing)."""
