"""Video decoding and encoding with PyAV (its wheels bundle FFmpeg; no torchvision, no system FFmpeg).

``read_video`` returns every frame of a file (or of in-memory bytes, as ``datasets.Video(decode=False)`` rows
hold them) as a ``uint8`` array ``(T, H, W, 3)``; the image processor then samples the clip's frames.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v")


class VideoDecodeError(ValueError):
    """A video file that cannot be opened, has no video stream, or holds no decodable frame."""


def _require_av():
    try:
        import av
    except ImportError as err:  # pragma: no cover - av is a declared dependency of the video extra
        raise ImportError("decoding videos needs PyAV: pip install 'lrpe_hf[video]' (or pip install av)") from err
    return av


def _open(source):
    """``source``: path, bytes, or a ``{"path", "bytes"}`` dict (``datasets.Video(decode=False)`` rows)."""
    av = _require_av()
    name = source
    if isinstance(source, dict):
        name = source.get("path") or "<bytes>"
        source = source.get("bytes") or source.get("path")
    if isinstance(source, (bytes, bytearray)):
        name, source = "<bytes>", io.BytesIO(source)
    elif source is None:
        raise VideoDecodeError("video entry has neither bytes nor a path")
    else:
        source = str(source)
        if not Path(source).is_file():
            raise FileNotFoundError(f"video file not found: {source}")
    try:
        container = av.open(source)
    except Exception as err:  # noqa: BLE001 - av raises many error types (InvalidDataError, OSError...)
        raise VideoDecodeError(f"cannot open video {name}: {err}") from err
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(f"{name} has no video stream")
    return container, name


def read_video(source, max_frames: int | None = None) -> np.ndarray:
    """Decode a video to ``uint8 (T, H, W, 3)`` RGB frames (at most ``max_frames`` from the start)."""
    container, name = _open(source)
    frames = []
    try:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    except Exception as err:  # noqa: BLE001
        if not frames:
            raise VideoDecodeError(f"cannot decode video {name}: {err}") from err
        # a truncated tail still leaves usable frames; keep what decoded
    finally:
        container.close()
    if not frames:
        raise VideoDecodeError(f"video {name} contains no decodable frame")
    return np.stack(frames)


def check_video(source) -> None:
    """Raise :class:`VideoDecodeError` unless at least one frame of ``source`` decodes."""
    read_video(source, max_frames=1)


def write_video(path, frames: np.ndarray, fps: int = 8, codec: str = "libx264", crf: int = 18) -> Path:
    """Encode ``uint8 (T, H, W, 3)`` frames to ``path`` (H.264 in MP4 by default; even H and W for yuv420p)."""
    av = _require_av()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"H.264/yuv420p needs even frame sizes, got {frames.shape[1]}x{frames.shape[2]}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
