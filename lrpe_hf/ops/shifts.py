"""Zero-parameter neighbourhood shifts of channel groups (the video transformer's "neighbourhood association").

Both operate on the last (channel) axis, channels head-major, and move whole channel groups between tokens that
are neighbours in time (``temporal_shift``, XViT's space-time mixing) or in the patch grid (``spatial_shift``,
the eight-neighbour shift). Pure PyTorch, no parameters: a checkpoint loads with or without them.
"""

from __future__ import annotations

import torch

# (dy, dx, keep_own_value_off_grid) of the eight neighbour groups for shift size s = 1, in channel-group order.
# Group i of token (y, x) is read from (y + dy*s, x + dx*s). Axis groups are zero off the grid, diagonal groups
# keep the token's own value (the official implementation's border rule).
EIGHT_NEIGHBOURS = (
    (1, 0, False),
    (-1, 0, False),
    (0, 1, False),
    (0, -1, False),
    (-1, -1, True),
    (1, 1, True),
    (-1, 1, True),
    (1, -1, True),
)


def temporal_shift(x: torch.Tensor, segment: int, fold: int) -> torch.Tensor:
    """Shift channel groups to neighbouring frames inside segments of ``segment`` consecutive frames.

    Args:
        x: ``(batch * frames, ..., channels)``, frame-major rows (row ``b * frames + t``); frames are grouped into
            consecutive segments of ``segment`` rows, so ``x.shape[0]`` must be a multiple of ``segment``.
        segment: frames per segment (the shift never crosses a segment boundary).
        fold: channels per shifted group, ``f``.

    Returns:
        Same shape. For frame ``t`` of a segment, channels ``[0, f)`` come from frame ``t + 1`` (zero for the
        segment's last frame), ``[f, 2f)`` from frame ``t - 1`` (zero for its first frame), the rest unchanged.
    """
    rows, channels = x.shape[0], x.shape[-1]
    if segment < 1 or rows % segment:
        raise ValueError(f"temporal_shift: {rows} rows cannot be split into segments of {segment} frames")
    if fold < 0 or 2 * fold > channels:
        raise ValueError(f"temporal_shift: fold={fold} needs 2*fold <= channels ({channels})")
    if fold == 0:
        return x
    xs = x.reshape(rows // segment, segment, *x.shape[1:])
    forward = xs[..., :fold]
    backward = xs[..., fold : 2 * fold]
    zeros_f = torch.zeros_like(forward[:, :1])
    forward = torch.cat([forward[:, 1:], zeros_f], dim=1)  # frame t reads t + 1
    backward = torch.cat([zeros_f, backward[:, :-1]], dim=1)  # frame t reads t - 1
    out = torch.cat([forward, backward, xs[..., 2 * fold :]], dim=-1)
    return out.reshape(x.shape)


def _shifted(grid: torch.Tensor, dy: int, dx: int, keep_own: bool) -> torch.Tensor:
    """``out[..., y, x, :] = grid[..., y + dy, x + dx, :]`` with zero (or the own value) off the grid.

    ``grid`` is ``(B, H, W, ..., C)``."""
    height, width = grid.shape[1], grid.shape[2]
    out = grid.clone() if keep_own else torch.zeros_like(grid)
    ys_dst = slice(max(0, -dy), height - max(0, dy))
    ys_src = slice(max(0, dy), height - max(0, -dy))
    xs_dst = slice(max(0, -dx), width - max(0, dx))
    xs_src = slice(max(0, dx), width - max(0, -dx))
    out[:, ys_dst, xs_dst] = grid[:, ys_src, xs_src]
    return out


def spatial_shift(x: torch.Tensor, height: int, width: int, shift_size: int = 1) -> torch.Tensor:
    """Eight-neighbour channel shift on a row-major patch grid.

    Args:
        x: ``(batch * height * width, ..., channels)``, row ``b * H * W + y * W + x`` (the temporal-attention
            layout ``(B * N, T, D)``).
        height, width: the token grid.
        shift_size: neighbour distance ``s``; only ``s = 1`` (every official final config) is supported.

    Returns:
        Same shape. With ``g = channels // 16``, channel group ``i < 8`` (channels ``[i g, (i + 1) g)``) of token
        ``(y, x)`` is read from the neighbour ``EIGHT_NEIGHBOURS[i]``; channels ``[8 g, channels)`` are unchanged.
    """
    if shift_size != 1:
        raise NotImplementedError(
            f"spatial_shift: shift_size={shift_size} is not implemented; only shift_size=1 (used by every final "
            "official configuration) is supported"
        )
    rows, channels = x.shape[0], x.shape[-1]
    if height < 1 or width < 1 or rows % (height * width):
        raise ValueError(f"spatial_shift: {rows} rows do not form a {height}x{width} grid times a batch")
    if height <= shift_size or width <= shift_size:
        raise ValueError(
            f"spatial_shift: a {height}x{width} token grid has no neighbours at distance {shift_size}; use a larger "
            "image (or smaller patch stride) or turn the spatial shift off"
        )
    g = channels // 16
    if g == 0:
        raise ValueError(f"spatial_shift needs at least 16 channels (one per group of 8 neighbours x 2), got {channels}")
    grid = x.reshape(rows // (height * width), height, width, *x.shape[1:])
    parts = []
    for i, (dy, dx, keep_own) in enumerate(EIGHT_NEIGHBOURS):
        group = grid[..., i * g : (i + 1) * g]
        parts.append(_shifted(group, dy * shift_size, dx * shift_size, keep_own))
    parts.append(grid[..., 8 * g :])
    return torch.cat(parts, dim=-1).reshape(x.shape)
