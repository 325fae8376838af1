"""nn.Modules built from ``lrpe_hf.ops``: attention blocks, MLPs, norms, patch embeddings."""
