"""Benchmarks callable from Python (the scripts in scripts/ only parse arguments): baselines, timing, tables."""
