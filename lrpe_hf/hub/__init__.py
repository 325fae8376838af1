"""Hub helpers: model-card rendering, self-contained remote-code bundles, push."""
