"""Pillow-backend processor mapping videos (lists of frames) to ``pixel_values (B, T, C, H, W)``.

No torchvision: Transformers' video processors need it and it does not work with CPU-only torch builds, so this is
an *image* processor (like ``VideoMAEImageProcessorPil``) that additionally samples a fixed number of frames:
uniform segments (the middle frame of each of ``num_frames`` equal segments) for evaluation, a random frame inside
each segment for training (TSN sampling, as the official SSv2 recipe). It can also emit several views per video
(temporal clips x spatial crops) for multi-view test-time evaluation.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from transformers.image_processing_backends import PilBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import PILImageResampling
from transformers.processing_utils import ImagesKwargs

from ..processing_common import gray_to_rgb, refuse_prescaled_floats

FRAME_SAMPLING = ("uniform", "random")
CROP_MODES = ("center", "random")


class FixationViTImageProcessorKwargs(ImagesKwargs, total=False):
    """Extra keyword arguments.

    num_frames: frames sampled per clip (``None`` keeps every frame).
    frame_sampling: ``"uniform"`` (segment middles; evaluation) or ``"random"`` (random frame per segment; training).
    crop_mode: ``"center"`` or ``"random"`` (one crop position per clip, same for all its frames).
    num_temporal_clips, num_spatial_crops: multi-view evaluation; with more than one view, ``pixel_values`` is
        ``(B, clips * crops, T, C, H, W)`` (clip-major). Spatial crops run along the longer side (start/centre/end).
    """

    num_frames: int | None
    frame_sampling: str | None
    crop_mode: str | None
    num_temporal_clips: int | None
    num_spatial_crops: int | None


def sample_frame_indices(num_available: int, num_frames: int, mode: str = "uniform", clip_index: int = 0,
                         num_clips: int = 1, rng: np.random.Generator | None = None) -> np.ndarray:
    """TSN segment sampling: split ``num_available`` frames into ``num_frames`` equal segments and take one frame
    of each: at relative position ``(clip_index + 0.5) / num_clips`` inside the segment (``"uniform"``; the middle for
    one clip) or uniformly at random (``"random"``). Short videos repeat frames."""
    if num_available < 1:
        raise ValueError("cannot sample frames from a video with no frames")
    if mode not in FRAME_SAMPLING:
        raise ValueError(f"frame_sampling={mode!r}; choose one of {FRAME_SAMPLING}")
    segment = num_available / num_frames
    starts = segment * np.arange(num_frames)
    if mode == "uniform":
        positions = starts + segment * (clip_index + 0.5) / num_clips
    else:
        rng = rng if rng is not None else np.random.default_rng(np.random.randint(2**31))
        positions = starts + rng.uniform(0.0, segment, size=num_frames)
    return np.clip(np.floor(positions).astype(np.int64), 0, num_available - 1)


def _as_frame_list(video) -> list:
    """One video (array (T, H, W, C) / (T, C, H, W), tensor, or list of frames) -> list of frames."""
    if hasattr(video, "numpy") and not isinstance(video, np.ndarray):  # torch tensor
        video = video.detach().cpu().numpy()
    if isinstance(video, np.ndarray):
        if video.ndim == 3:  # a gray video (frames, height, width)
            video = np.repeat(video[..., None], 3, axis=-1)
        if video.ndim != 4:
            raise ValueError(
                f"a video array must have 4 dims (frames, height, width, channels) or 3 (a gray video: frames, "
                f"height, width), got {video.shape}"
            )
        return list(video)
    if isinstance(video, (list, tuple)):
        return list(gray_to_rgb(list(video), frame_ndim=2))  # gray (H, W) frames become RGB
    raise ValueError(f"a video must be an array or a list of frames, got {type(video).__name__}")


def _as_video_list(videos) -> list[list]:
    """A video or a batch of videos -> list of lists of frames."""
    if hasattr(videos, "numpy") and not isinstance(videos, np.ndarray):
        videos = videos.detach().cpu().numpy()
    if isinstance(videos, np.ndarray):
        if videos.ndim == 5:
            return [_as_frame_list(v) for v in videos]
        return [_as_frame_list(videos)]
    if isinstance(videos, (list, tuple)):
        if len(videos) == 0:
            raise ValueError("no videos given")
        first = videos[0]
        if isinstance(first, (list, tuple)) or (getattr(first, "ndim", 0) == 4):
            return [_as_frame_list(v) for v in videos]
        return [list(videos)]  # a single video given as a list of frames
    if isinstance(videos, Image.Image):
        raise ValueError("got a single image; pass a video as a list of frames")
    raise ValueError(f"unsupported video input of type {type(videos).__name__}")


class FixationViTImageProcessor(PilBackend):
    r"""Video processor for :class:`FixationViTForVideoClassification` (Pillow backend).

    Per video: sample ``num_frames`` frames, resize the shorter side to ``size["shortest_edge"]``, crop to
    ``crop_size``, rescale to [0, 1] and normalise with mean = std = 0.5 (the official statistics). Returns
    ``pixel_values`` of shape ``(B, T, C, H, W)``, or ``(B, V, T, C, H, W)`` for ``V > 1`` views.
    """

    valid_kwargs = FixationViTImageProcessorKwargs
    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BILINEAR
    image_mean = [0.5, 0.5, 0.5]
    image_std = [0.5, 0.5, 0.5]
    size = {"shortest_edge": 224}
    default_to_square = False
    crop_size = {"height": 224, "width": 224}
    do_resize = True
    do_center_crop = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    num_frames = 16
    frame_sampling = "uniform"
    crop_mode = "center"
    num_temporal_clips = 1
    num_spatial_crops = 1

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def preprocess(self, videos, **kwargs) -> BatchFeature:
        """``videos``: one video or a batch; a video is a list of frames (PIL images or ``(H, W, C)`` uint8
        arrays) or an array ``(T, H, W, C)`` (``(T, H, W)`` for a gray video). Float pixels already in [0, 1] are
        refused while ``do_rescale`` is on (they would be divided by 255 again)."""
        refuse_prescaled_floats(videos, kwargs.get("do_rescale", self.do_rescale), type(self).__name__)
        return super().preprocess(videos, **kwargs)

    def _preprocess_image_like_inputs(self, images, *args, **kwargs) -> BatchFeature:
        num_frames = kwargs.get("num_frames")
        sampling = kwargs.get("frame_sampling") or "uniform"
        crop_mode = kwargs.get("crop_mode") or "center"
        # None means the default of one view; 0 is a mistake to refuse below, not to turn into 1
        clips = 1 if kwargs.get("num_temporal_clips") is None else kwargs["num_temporal_clips"]
        crops = 1 if kwargs.get("num_spatial_crops") is None else kwargs["num_spatial_crops"]
        if sampling not in FRAME_SAMPLING:
            raise ValueError(f"frame_sampling={sampling!r}; choose one of {FRAME_SAMPLING}")
        if crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode={crop_mode!r}; choose one of {CROP_MODES}")
        if num_frames is not None and num_frames < 1:
            raise ValueError(f"num_frames={num_frames} must be positive")
        if clips < 1 or crops < 1:
            raise ValueError(f"num_temporal_clips={clips} and num_spatial_crops={crops} must be positive")
        do_convert_rgb = kwargs.get("do_convert_rgb")
        videos = _as_video_list(images)
        out = []
        for index, frames in enumerate(videos):
            if len(frames) == 0:
                raise ValueError(f"video {index} has no frames")
            views = []
            for clip in range(clips):
                if num_frames is None:
                    chosen = list(range(len(frames)))
                else:
                    chosen = sample_frame_indices(len(frames), num_frames, sampling, clip, clips).tolist()
                cache = {}
                for i in set(chosen):
                    cache[i] = self._resize_frame(frames[i], do_convert_rgb, kwargs)
                clip_frames = np.stack([cache[i] for i in chosen])  # (T, C, H', W')
                for crop in range(crops):
                    view = clip_frames
                    if kwargs.get("do_center_crop"):
                        view = self._crop(view, kwargs["crop_size"], crop_mode, crop, crops)
                    views.append(self._rescale_normalize(view, kwargs))
            out.append(np.stack(views) if len(views) > 1 else views[0])
        shapes = {v.shape for v in out}
        if len(shapes) > 1:
            raise ValueError(f"processed videos have different shapes {sorted(shapes)}; set num_frames and crop_size")
        return BatchFeature(data={"pixel_values": np.stack(out)}, tensor_type=kwargs.get("return_tensors"))

    def _resize_frame(self, frame, do_convert_rgb, kwargs) -> np.ndarray:
        image = self.process_image(frame, do_convert_rgb=do_convert_rgb, input_data_format=kwargs.get("input_data_format"))
        if image.shape[0] == 1 and do_convert_rgb:
            image = np.repeat(image, 3, axis=0)
        if kwargs.get("do_resize"):
            image = self.resize(image, kwargs["size"], kwargs.get("resample"))
        return image

    @staticmethod
    def _crop(clip: np.ndarray, crop_size, mode: str, index: int, count: int) -> np.ndarray:
        height, width = clip.shape[-2:]
        ch, cw = crop_size.height, crop_size.width
        if ch > height or cw > width:
            raise ValueError(f"crop_size {ch}x{cw} is larger than the resized frame {height}x{width}")
        if count > 1:  # start / centre / end along the longer side, centred on the other
            if width >= height:
                top, left = (height - ch) // 2, int(round((width - cw) * index / (count - 1)))
            else:
                top, left = int(round((height - ch) * index / (count - 1))), (width - cw) // 2
        elif mode == "random":
            top, left = np.random.randint(0, height - ch + 1), np.random.randint(0, width - cw + 1)
        else:
            top, left = (height - ch) // 2, (width - cw) // 2
        return clip[..., top : top + ch, left : left + cw]

    @staticmethod
    def _rescale_normalize(clip: np.ndarray, kwargs) -> np.ndarray:
        clip = clip.astype(np.float32)
        if kwargs.get("do_rescale"):
            clip = clip * np.float32(kwargs["rescale_factor"])
        if kwargs.get("do_normalize"):
            mean = np.asarray(kwargs["image_mean"], dtype=np.float32).reshape(-1, 1, 1)
            std = np.asarray(kwargs["image_std"], dtype=np.float32).reshape(-1, 1, 1)
            clip = (clip - mean) / std
        return clip


__all__ = ["FixationViTImageProcessor", "sample_frame_indices"]
