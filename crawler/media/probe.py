"""Read a downloaded media file with ffprobe and ffmpeg: metadata, poster, frame hashes.

Frame hashes are 64-bit difference hashes (dHash) of frames sampled at fixed fractions of
the duration, so a re-encoded copy of the same video (other codec, bitrate, container)
hashes alike while another video does not. Every call has a timeout.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

from crawler.errors import MediaError

FRAME_POINTS = (0.1, 0.3, 0.5, 0.7, 0.9)
# Bits of 64 that may differ between two hashes of the same picture (re-encoding noise).
SAME_FRAME_BITS = 10


def _run(args: list[str], timeout: float) -> bytes:
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"{Path(args[0]).name} timed out after {timeout:.0f} s") from exc
    except OSError as exc:
        raise MediaError(f"cannot run {args[0]}: {exc.strerror}") from exc
    if done.returncode != 0:
        last = (done.stderr.decode("utf-8", "replace").strip().splitlines() or ["failed"])[-1]
        raise MediaError(f"{Path(args[0]).name}: {last[:200]}")
    return done.stdout


def probe(path: Path, ffmpeg_dir: str, timeout: float = 60.0) -> dict:
    """Duration, picture size, codecs and container of a media file."""
    out = _run(
        [
            f"{ffmpeg_dir}/ffprobe",
            *("-v", "error", "-print_format", "json", "-show_format", "-show_streams"),
            str(path),
        ],
        timeout,
    )
    info = json.loads(out or b"{}")
    streams = info.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"), {})
    audio = next((s for s in streams if s.get("codec_type") == "audio"), {})
    if not video and not audio:
        raise MediaError("not a playable media file: no audio or video stream")
    duration = (info.get("format") or {}).get("duration") or video.get("duration")
    return {
        "duration": round(float(duration), 3) if duration else None,
        "width": video.get("width"),
        "height": video.get("height"),
        "video_codec": video.get("codec_name"),
        "audio_codec": audio.get("codec_name"),
        "format": (info.get("format") or {}).get("format_name"),
    }


def _at(duration: float | None, fraction: float) -> str:
    return f"{(duration or 0) * fraction:.3f}"


def poster(path: Path, duration: float | None, ffmpeg_dir: str, timeout: float = 60.0) -> bytes:
    """A PNG of the frame a tenth of the way in (the first frame is often black)."""
    return _run(
        [
            f"{ffmpeg_dir}/ffmpeg",
            *("-v", "error", "-ss", _at(duration, 0.1), "-i", str(path)),
            *("-frames:v", "1", "-c:v", "png", "-f", "image2pipe", "pipe:1"),
        ],
        timeout,
    )


def _dhash(gray: bytes) -> str:
    """dHash of a 9x8 grey picture: one bit per horizontal neighbour pair."""
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (gray[row * 9 + col] < gray[row * 9 + col + 1])
    return f"{bits:016x}"


def frame_hashes(
    path: Path, duration: float | None, ffmpeg_dir: str, timeout: float = 60.0
) -> list[str]:
    """dHashes of frames at FRAME_POINTS of the duration (input seeking: no full decode)."""
    hashes = []
    for point in FRAME_POINTS:
        gray = _run(
            [
                f"{ffmpeg_dir}/ffmpeg",
                *("-v", "error", "-ss", _at(duration, point), "-i", str(path)),
                *("-frames:v", "1", "-vf", "scale=9:8:flags=area,format=gray"),
                *("-f", "rawvideo", "pipe:1"),
            ],
            timeout,
        )
        if len(gray) >= 72:
            hashes.append(_dhash(gray[:72]))
    return hashes


def image_hash(data: bytes) -> list[str]:
    """The dHash of a picture, as a one-frame list; [] for bytes that are no picture."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            gray = img.convert("L").resize((9, 8), Image.Resampling.BOX).tobytes()
    except (UnidentifiedImageError, OSError, ValueError):
        return []
    return [_dhash(gray)]


def alike(a: list[str], b: list[str]) -> bool:
    """Whether two frame-hash lists show the same pictures."""
    if not a or len(a) != len(b):
        return False
    pairs = zip(a, b, strict=True)
    return all(bin(int(x, 16) ^ int(y, 16)).count("1") <= SAME_FRAME_BITS for x, y in pairs)
