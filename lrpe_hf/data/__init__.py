"""Dataset builders and generators (corpora, motion videos, smoothing pairs, video decoding)."""
