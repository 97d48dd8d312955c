"""Episode videos with imageio: GIF built in, MP4 through the ``video`` extra (imageio-ffmpeg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerasdojo.errors import DojoError
from kerasdojo.files import atomic_path

MAX_WIDTH = 480


def _shrink(frame: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return frame
    h, w = (frame.shape[0] // factor) * factor, (frame.shape[1] // factor) * factor
    f = frame[:h, :w].reshape(h // factor, factor, w // factor, factor, -1).mean(axis=(1, 3))
    return f.astype(np.uint8)


def check_video_path(path: str | Path) -> Path:
    """Fail early on a video path kerasdojo cannot write."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise DojoError(f"Video files must end in .gif or .mp4. Received: {path}")
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise DojoError(
                "MP4 needs imageio-ffmpeg", hint="pip install imageio-ffmpeg (the video extra), or use a .gif"
            ) from None
    return path


def write_video(path: str | Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    """Write RGB frames to ``path`` (.gif or .mp4); frames wider than 480 px are scaled down."""
    import imageio.v3 as iio

    path = check_video_path(path)
    if not frames:
        raise DojoError("no frames to write")
    factor = max(1, int(np.ceil(frames[0].shape[1] / MAX_WIDTH)))
    stack = np.stack([_shrink(np.asarray(f, np.uint8), factor) for f in frames])
    suffix = path.suffix.lower()
    if suffix == ".gif":
        with atomic_path(path, suffix=".gif") as tmp:
            iio.imwrite(tmp, stack, duration=1000.0 / fps, loop=0)
    else:
        with atomic_path(path, suffix=".mp4") as tmp:
            iio.imwrite(tmp, stack, fps=fps, codec="libx264", plugin="FFMPEG", macro_block_size=8)
    return path
