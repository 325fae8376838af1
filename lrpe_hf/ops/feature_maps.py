"""Kernel feature maps phi applied to queries and keys of linear attention (never to values)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

FEATURE_MAPS = ("1+elu", "elu", "relu", "silu", "identity")


def feature_map(x: torch.Tensor, name: str, offset: float = 0.0) -> torch.Tensor:
    """phi(x) + offset, elementwise.

    ``"1+elu"`` (Katharopoulos et al.; the LRPE default) is positive; ``"relu"`` with ``offset=d**-0.5`` is the
    feature-fixation video model's map; ``"elu"`` (TransNormer) and ``"silu"`` (TNL) may be negative.
    """
    if name == "1+elu":
        y = 1.0 + F.elu(x)
    elif name == "elu":
        y = F.elu(x)
    elif name == "relu":
        y = F.relu(x)
    elif name == "silu":
        y = F.silu(x)
    elif name == "identity":
        y = x
    else:
        raise ValueError(f"unknown feature_map {name!r}; choose one of {FEATURE_MAPS}")
    return y + offset if offset else y
