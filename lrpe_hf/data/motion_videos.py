"""A small real video dataset (encoded .mp4 files) of moving textured shapes, generated offline.

Each clip shows one striped shape on a smooth textured background. Two label sets:

* L-shaped paths (default): the shape moves in one direction, then in a perpendicular one; the label is the ordered
  pair, e.g. ``right_then_down``. Labels depend on direction *and* order.
* straight paths: ``right``, ``left``, ``down``, ``up`` (easier: one direction for the whole clip).

Classes come in time-reversed pairs (``right_then_down`` played backwards is ``up_then_left``; ``right`` backwards
is ``left``). Both members of a pair show the same set of frames, because start positions are drawn symmetrically.
So a model that ignores frame order cannot beat 50% accuracy on four classes (chance: 25%).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .video_io import write_video

DIRECTIONS = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}
# Straight motions (one direction for the whole clip) and L-shaped "first_then_second" motions.
STRAIGHT_CLASSES = tuple(DIRECTIONS)
L_CLASSES = tuple(
    f"{a}_then_{b}" for a in DIRECTIONS for b in DIRECTIONS if DIRECTIONS[a][0] * DIRECTIONS[b][0] == 0
    and DIRECTIONS[a][1] * DIRECTIONS[b][1] == 0 and a != b
)
ALL_CLASSES = STRAIGHT_CLASSES + L_CLASSES
# Two time-reversed pairs: (right_then_down <-> up_then_left), (down_then_right <-> left_then_up).
DEFAULT_CLASSES = ("right_then_down", "down_then_right", "up_then_left", "left_then_up")


def _texture(rng: np.random.Generator, height: int, width: int, low_freq: int) -> np.ndarray:
    """Smooth random colour texture in [0, 1], (H, W, 3): bilinear upsampling of a coarse random grid."""
    coarse = rng.random((low_freq + 1, low_freq + 1, 3))
    ys = np.linspace(0, low_freq, height)
    xs = np.linspace(0, low_freq, width)
    y0, x0 = np.floor(ys).astype(int).clip(0, low_freq - 1), np.floor(xs).astype(int).clip(0, low_freq - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    c00, c01 = coarse[y0][:, x0], coarse[y0][:, x0 + 1]
    c10, c11 = coarse[y0 + 1][:, x0], coarse[y0 + 1][:, x0 + 1]
    return (1 - wy) * ((1 - wx) * c00 + wx * c01) + wy * ((1 - wx) * c10 + wx * c11)


def _shape_sprite(rng: np.random.Generator, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured disk or square: (colour (2r+1, 2r+1, 3), alpha mask (2r+1, 2r+1))."""
    side = 2 * radius + 1
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    if rng.random() < 0.5:
        mask = (yy**2 + xx**2) <= radius**2
    else:
        mask = np.ones((side, side), dtype=bool)
    period = rng.integers(2, 5)
    angle = rng.uniform(0, np.pi)
    stripes = (np.cos(angle) * xx + np.sin(angle) * yy) // period % 2
    # high-contrast stripes (one dark, one bright colour) so the shape stands out from the softer background
    colour_a, colour_b = rng.uniform(0.0, 0.25, 3), rng.uniform(0.75, 1.0, 3)
    sprite = np.where(stripes[..., None] > 0, colour_a, colour_b)
    return sprite, mask


def motion_path(label: str, num_frames: int, leg: float) -> np.ndarray:
    """(y, x) offsets from the start, ``(num_frames, 2)``: ``leg`` pixels in the first direction, then ``leg`` in the
    second, sampled uniformly along the path with the corner exactly halfway (so a reversed clip of the
    time-reversed class visits the same points)."""
    if label not in ALL_CLASSES:
        raise ValueError(f"unknown motion class {label!r}; choose from {ALL_CLASSES}")
    first, second = label.split("_then_") if "_then_" in label else (label, label)
    d1, d2 = np.array(DIRECTIONS[first], dtype=float), np.array(DIRECTIONS[second], dtype=float)
    arc = np.linspace(0.0, 2.0, num_frames)[:, None]
    return np.where(arc <= 1.0, arc * d1, d1 + (arc - 1.0) * d2) * leg


def render_motion_clip(label: str, rng: np.random.Generator, num_frames: int = 16, size: int = 64,
                       noise: float = 0.03, background_contrast: float = 0.4) -> np.ndarray:
    """One clip of class ``label`` as ``uint8 (T, size, size, 3)``."""
    radius = int(rng.integers(size // 10, size // 7 + 1))
    leg = (size - 2 * radius - 4) * 0.45  # length of each leg of the L, in pixels
    offsets = motion_path(label, num_frames, leg)
    lo, hi = offsets.min(0), offsets.max(0)
    margin = radius + 1
    start = np.array([rng.uniform(margin - lo[i], size - 1 - margin - hi[i]) for i in range(2)])
    centres = np.rint(start + offsets).astype(int)
    background = _texture(rng, size, size, int(rng.integers(3, 7))) * background_contrast + 0.5 * (1 - background_contrast)
    sprite, mask = _shape_sprite(rng, radius)
    clip = np.empty((num_frames, size, size, 3), dtype=np.float64)
    for t, (cy, cx) in enumerate(centres):
        frame = background.copy()
        ys, xs = slice(cy - radius, cy + radius + 1), slice(cx - radius, cx + radius + 1)
        frame[ys, xs] = np.where(mask[..., None], sprite, frame[ys, xs])
        clip[t] = frame + rng.normal(0.0, noise, frame.shape)
    return (np.clip(clip, 0, 1) * 255).round().astype(np.uint8)


def make_motion_dataset(root, train_per_class: int = 48, validation_per_class: int = 16, num_frames: int = 16,
                        size: int = 64, fps: int = 8, classes=DEFAULT_CLASSES, seed: int = 0,
                        overwrite: bool = False) -> dict:
    """Write ``root/{train,validation}/<label>/<label>_<i>.mp4`` and ``root/motion_dataset.json``.

    Refuses a non-empty ``root`` unless ``overwrite=True`` (then only the generated split folders are rewritten).
    Returns the metadata dict.
    """
    root = Path(root)
    classes = tuple(classes)
    unknown = [c for c in classes if c not in ALL_CLASSES]
    if unknown or len(classes) < 2:
        raise ValueError(f"classes must be >= 2 of {ALL_CLASSES}, got unknown {unknown}" if unknown
                         else "need at least 2 classes")
    if size % 2 or size < 24:
        raise ValueError(f"size={size} must be even and >= 24")
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise ValueError(f"{root} is not empty; choose a new folder or pass overwrite=True")
    rng = np.random.default_rng(seed)
    counts = {"train": train_per_class, "validation": validation_per_class}
    total = sum(counts.values()) * len(classes)
    with tqdm(total=total, desc="writing motion videos", unit="clip") as bar:
        for split, per_class in counts.items():
            for label in classes:
                folder = root / split / label
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(per_class):
                    clip = render_motion_clip(label, rng, num_frames=num_frames, size=size)
                    write_video(folder / f"{label}_{i:04d}.mp4", clip, fps=fps)
                    bar.update(1)
    meta = {"classes": list(classes), "num_frames": num_frames, "size": size, "fps": fps, "seed": seed,
            "train_per_class": train_per_class, "validation_per_class": validation_per_class,
            "chance_accuracy": 1.0 / len(classes)}
    (root / "motion_dataset.json").write_text(json.dumps(meta, indent=2))
    return meta
