"""Training pairs for texture-removing image smoothing, generated offline (DGFN/TSAFN recipe, arXiv 1712.02893).

"We generate a large dataset by blending natural textures with clean structure-only images" (the paper). Here:

* **Structure-only images** ``S``: procedural flat-colour "cartoons" (polygons, ellipses, rectangles with gentle
  gradients, drawn with ``skimage.draw``) and real photographs shipped with scikit-image (astronaut, coffee, chelsea,
  rocket, ...), flattened by strong L0 smoothing (``cv2.ximgproc.l0Smooth``).
* **Textures** ``T``: the real texture photographs of scikit-image (``brick``, ``grass``, ``gravel``), spatially
  deformed (random affine: scale, rotation, shear), normalised, colour-varied (per-channel gains) and scaled by a
  random amplitude ``alpha``.
* **Blend**: ``I = clip(S + alpha * M * (g_c * T))`` with ``M`` a mask (whole image or a subset of the cartoon's
  regions), so some regions stay clean.
* **Ground truths**: target ``S``; texture map ``tanh(k * sum_c |I - S|)``; structure (edge) map = Sobel magnitude
  of ``S`` above a threshold.

**Splits are disjoint in structure and texture identity**: each cartoon is drawn from a split-specific seed
stream and photos are assigned to one split; textures either come from spatially disjoint bands of each texture
photograph (``texture_split="regions"``: rows 0-287 train, 288-383 validation, 384-511 test) or are held out by
identity (``texture_split="identity"``: brick+grass train, gravel top/bottom half validation/test).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEXTURE_NAMES = ("brick", "grass", "gravel")
# rows of each 512x512 texture photograph used by each split (texture_split="regions")
TEXTURE_ROWS = {"train": (0, 288), "validation": (288, 384), "test": (384, 512)}
# photos flattened into structure images; disjoint across splits (chelsea and cat are the same photo: test only)
PHOTO_SPLITS = {
    "train": ("astronaut", "rocket", "immunohistochemistry", "colorwheel", "hubble_deep_field"),
    "validation": ("coffee",),
    "test": ("chelsea", "stereo_motorcycle"),
}
SPLITS = ("train", "validation", "test")
_SPLIT_SEED_OFFSET = {"train": 0, "validation": 1, "test": 2}


@dataclass
class SmoothingPairConfig:
    """Parameters of the generator (all amplitudes in [0, 1] image units)."""

    size: int = 96
    photo_fraction: float = 0.3
    textures_per_structure: int = 2
    alpha_range: tuple[float, float] = (0.04, 0.12)  # std of the added texture
    texture_scale_range: tuple[float, float] = (0.5, 2.0)
    colour_gain_range: tuple[float, float] = (0.3, 1.7)
    whole_image_mask_prob: float = 0.3
    texture_gain: float = 3.0  # k in tanh(k * sum_c |I - S|)
    edge_threshold: float = 0.04
    l0_lambda_range: tuple[float, float] = (0.01, 0.04)
    texture_split: str = "regions"

    def __post_init__(self):
        if self.size < 16:
            raise ValueError(f"SmoothingPairConfig: size={self.size} must be >= 16")
        if self.texture_split not in ("regions", "identity"):
            raise ValueError(f"SmoothingPairConfig: texture_split={self.texture_split!r}; choose 'regions' or 'identity'")
        if not 0 <= self.photo_fraction <= 1:
            raise ValueError(f"SmoothingPairConfig: photo_fraction={self.photo_fraction} must be in [0, 1]")
        if self.textures_per_structure < 1:
            raise ValueError(f"SmoothingPairConfig: textures_per_structure={self.textures_per_structure} must be >= 1")


_CACHE: dict[str, np.ndarray] = {}


def _skimage_image(name: str) -> np.ndarray:
    if name not in _CACHE:
        from skimage import data

        image = getattr(data, name)()
        if isinstance(image, tuple):  # stereo_motorcycle -> (left, right, disparity)
            image = image[0]
        _CACHE[name] = np.asarray(image)
    return _CACHE[name]


def texture_sources(split: str, texture_split: str = "regions") -> list[tuple[str, np.ndarray]]:
    """(texture id, float32 grayscale array in [0, 1]) pairs a split may draw textures from."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {SPLITS}")
    out = []
    if texture_split == "regions":
        lo, hi = TEXTURE_ROWS[split]
        for name in TEXTURE_NAMES:
            out.append((f"{name}[{lo}:{hi}]", _skimage_image(name)[lo:hi].astype(np.float32) / 255.0))
    else:
        if split == "train":
            names = [(n, slice(0, 512)) for n in ("brick", "grass")]
        else:
            names = [("gravel", slice(0, 256) if split == "validation" else slice(256, 512))]
        for name, rows in names:
            out.append((f"{name}[{rows.start}:{rows.stop}]", _skimage_image(name)[rows].astype(np.float32) / 255.0))
    return out


def deform_texture(texture: np.ndarray, size: tuple[int, int], rng: np.random.Generator, scale_range=(0.5, 2.0)) -> np.ndarray:
    """A random affine view (scale, rotation, shear, offset) of `texture`, mirrored at its borders so only pixels
    of the given region are used; normalised to zero mean and unit std. Returns float32 `(H, W)`."""
    from skimage.transform import AffineTransform, warp

    height, width = size
    scale = float(np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1]))))
    transform = AffineTransform(
        scale=(scale, scale * rng.uniform(0.85, 1.15)),
        rotation=rng.uniform(-np.pi, np.pi),
        shear=rng.uniform(-0.3, 0.3),
        translation=(rng.uniform(0, texture.shape[1]), rng.uniform(0, texture.shape[0])),
    )
    # warp maps output coordinates through `inverse_map`: output pixel p samples texture at transform(p / scale)
    warped = warp(texture, transform, output_shape=(height, width), mode="symmetric", order=1, preserve_range=True)
    warped = warped.astype(np.float32)
    std = float(warped.std())
    return (warped - warped.mean()) / (std if std > 1e-6 else 1.0)


def cartoon_structure(size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A flat-colour cartoon: background + 3-9 random polygons/ellipses/rectangles, some with gentle gradients.

    Returns the float32 RGB image `(H, W, 3)` in [0, 1] and its region label map `(H, W)` (int32).
    """
    from skimage import draw

    height, width = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy /= max(height - 1, 1)
    xx /= max(width - 1, 1)

    def colour_field():
        base = rng.uniform(0.08, 0.92, size=3).astype(np.float32)
        if rng.random() < 0.4:  # gentle linear gradient
            direction = rng.normal(size=2)
            ramp = direction[0] * yy + direction[1] * xx
            ramp = (ramp - ramp.mean()) / (np.abs(ramp).max() + 1e-6)
            return np.clip(base + rng.uniform(0.03, 0.12) * ramp[..., None], 0, 1)
        return np.broadcast_to(base, (height, width, 3))

    image = np.array(colour_field(), dtype=np.float32)
    labels = np.zeros((height, width), dtype=np.int32)
    for region in range(1, int(rng.integers(3, 10))):
        kind = rng.choice(["polygon", "ellipse", "rectangle"])
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        radius = rng.uniform(0.12, 0.45) * min(height, width)
        if kind == "polygon":
            n = int(rng.integers(3, 7))
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            radii = radius * rng.uniform(0.5, 1.0, n)
            rr, cc = draw.polygon(cy + radii * np.sin(angles), cx + radii * np.cos(angles), shape=(height, width))
        elif kind == "ellipse":
            rr, cc = draw.ellipse(cy, cx, radius, radius * rng.uniform(0.4, 1.0), shape=(height, width),
                                  rotation=rng.uniform(-np.pi, np.pi))
        else:
            h, w = radius * rng.uniform(0.5, 1.5), radius * rng.uniform(0.5, 1.5)
            rr, cc = draw.rectangle((max(cy - h, 0), max(cx - w, 0)), (min(cy + h, height - 1), min(cx + w, width - 1)),
                                    shape=(height, width))
            rr, cc = rr.astype(int), cc.astype(int)
        if len(rr) == 0:
            continue
        image[rr, cc] = colour_field()[rr, cc]
        labels[rr, cc] = region
    return image, labels


def flattened_photo(name: str, size: tuple[int, int], rng: np.random.Generator, lambda_range=(0.01, 0.04)) -> np.ndarray:
    """A random crop of a scikit-image photo, flattened into a structure-only image by L0 smoothing."""
    import cv2
    from skimage.transform import resize

    photo = _skimage_image(name)
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=-1)
    photo = photo[..., :3].astype(np.float32) / 255.0
    height, width = size
    # crop a window 1-2.5x the output size (at least the output size), then resize to the output
    zoom = rng.uniform(1.0, 2.5)
    ch = min(photo.shape[0], int(round(height * zoom)))
    cw = min(photo.shape[1], int(round(width * zoom)))
    y0 = int(rng.integers(0, photo.shape[0] - ch + 1))
    x0 = int(rng.integers(0, photo.shape[1] - cw + 1))
    crop = resize(photo[y0 : y0 + ch, x0 : x0 + cw], (height, width), anti_aliasing=True).astype(np.float32)
    # l0Smooth overwrites a float32 input in place: always hand it a copy
    flat = cv2.ximgproc.l0Smooth(crop.copy(), lambda_=float(rng.uniform(*lambda_range)), kappa=2.0)
    return np.clip(flat, 0, 1).astype(np.float32)


def structure_edges(structure: np.ndarray, threshold: float = 0.04) -> np.ndarray:
    """Binary edge map (float32 {0, 1}) of a structure image: per-channel Sobel magnitude, max over channels."""
    from skimage.filters import sobel

    magnitude = np.max(np.stack([sobel(structure[..., c]) for c in range(structure.shape[-1])]), axis=0)
    return (magnitude > threshold).astype(np.float32)


def blend(structure, texture, mask, alpha, gains, texture_gain=3.0):
    """I = clip(S + alpha * M * (g_c * T)); returns (image, texture ground truth tanh(k * sum_c |I - S|))."""
    added = alpha * mask[..., None] * (texture[..., None] * np.asarray(gains, dtype=np.float32))
    image = np.clip(structure + added, 0, 1).astype(np.float32)
    texture_map = np.tanh(texture_gain * np.abs(image - structure).sum(axis=-1)).astype(np.float32)
    return image, texture_map


def generate_pairs(split: str, num_pairs: int, seed: int = 0, config: SmoothingPairConfig | None = None,
                   size: tuple[int, int] | None = None):
    """Yield `num_pairs` dict rows (numpy arrays + ids) of one split. Deterministic for a given (split, seed)."""
    config = config or SmoothingPairConfig()
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {SPLITS}")
    height, width = size or (config.size, config.size)
    rng = np.random.default_rng([seed, _SPLIT_SEED_OFFSET[split]])
    textures = texture_sources(split, config.texture_split)
    photos = PHOTO_SPLITS[split]
    made = structure_index = 0
    while made < num_pairs:
        if rng.random() < config.photo_fraction:
            name = photos[int(rng.integers(len(photos)))]
            structure = flattened_photo(name, (height, width), rng, config.l0_lambda_range)
            labels = None
            structure_id = f"photo:{name}:{split}:{seed}:{structure_index}"
            kind = "photo"
        else:
            structure, labels = cartoon_structure((height, width), rng)
            structure_id = f"cartoon:{split}:{seed}:{structure_index}"
            kind = "cartoon"
        structure_index += 1
        edges = structure_edges(structure, config.edge_threshold)
        for _ in range(config.textures_per_structure):
            if made >= num_pairs:
                break
            texture_id, source = textures[int(rng.integers(len(textures)))]
            texture = deform_texture(source, (height, width), rng, config.texture_scale_range)
            if labels is None or rng.random() < config.whole_image_mask_prob:
                mask = np.ones((height, width), dtype=np.float32)
            else:
                regions = np.unique(labels)
                chosen = regions[rng.random(len(regions)) < 0.6]
                if len(chosen) == 0:
                    chosen = regions[:1]
                mask = np.isin(labels, chosen).astype(np.float32)
            alpha = rng.uniform(*config.alpha_range)
            gains = rng.uniform(*config.colour_gain_range, size=3)
            image, texture_map = blend(structure, texture, mask, alpha, gains, config.texture_gain)
            yield {
                "image": image,
                "target": structure,
                "texture": texture_map,
                "edges": edges,
                "structure_id": structure_id,
                "structure_kind": kind,
                "texture_id": texture_id,
            }
            made += 1


def _to_uint8(array: np.ndarray) -> np.ndarray:
    return np.round(np.clip(array, 0, 1) * 255).astype(np.uint8)


def build_smoothing_dataset(num_train: int = 1200, num_validation: int = 200, num_test: int = 200, seed: int = 0,
                            config: SmoothingPairConfig | None = None, **config_overrides):
    """A `datasets.DatasetDict` (train/validation/test) of blended pairs with `Image` features.

    Columns: `image` (textured input, RGB), `target` (structure-only image, RGB), `texture` (texture ground truth,
    L), `edges` (structure/edge ground truth, L), `structure_id`, `structure_kind`, `texture_id`. Save it with
    `save_to_disk` or `push_to_hub`.
    """
    import datasets
    import PIL.Image

    if config is None:
        config = SmoothingPairConfig(**config_overrides)
    elif config_overrides:
        raise ValueError("pass either config or keyword overrides, not both")
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "target": datasets.Image(),
            "texture": datasets.Image(),
            "edges": datasets.Image(),
            "structure_id": datasets.Value("string"),
            "structure_kind": datasets.Value("string"),
            "texture_id": datasets.Value("string"),
        }
    )
    splits = {}
    for split, count in (("train", num_train), ("validation", num_validation), ("test", num_test)):
        rows = {name: [] for name in features}
        for row in generate_pairs(split, count, seed=seed, config=config):
            for name in ("image", "target", "texture", "edges"):
                rows[name].append(PIL.Image.fromarray(_to_uint8(row[name])))
            for name in ("structure_id", "structure_kind", "texture_id"):
                rows[name].append(row[name])
        splits[split] = datasets.Dataset.from_dict(rows, features=features)
    return datasets.DatasetDict(splits)


def smoothing_batch_transform(batch: dict) -> dict:
    """`Dataset.with_transform` function: PIL columns -> model inputs (`pixel_values`, `labels`, `texture_labels`,
    `structure_labels`) as float32 tensors in [0, 1]."""
    import torch

    def stack(images, mode):
        arrays = [np.asarray(im.convert(mode), dtype=np.float32) / 255.0 for im in images]
        tensor = torch.from_numpy(np.stack(arrays))
        return tensor.permute(0, 3, 1, 2).contiguous() if mode == "RGB" else tensor.unsqueeze(1)

    return {
        "pixel_values": stack(batch["image"], "RGB"),
        "labels": stack(batch["target"], "RGB"),
        "texture_labels": stack(batch["texture"], "L"),
        "structure_labels": stack(batch["edges"], "L"),
    }


__all__ = [
    "SmoothingPairConfig",
    "build_smoothing_dataset",
    "generate_pairs",
    "cartoon_structure",
    "flattened_photo",
    "deform_texture",
    "structure_edges",
    "blend",
    "texture_sources",
    "smoothing_batch_transform",
]
