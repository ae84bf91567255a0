"""Short test clips and pictures made with Debian's ffmpeg (lavfi test sources), for media tests.

``make_clips(folder)`` writes every file once (an existing file is kept, a half-written one
never counts: each is written under a temporary name and renamed), so one session-scoped
folder serves every test and the bench. All clips are 320x240, 25 fps, H.264/AAC, with a
keyframe each second (the HLS version cuts 1 s segments at them) and the index at the front
(``+faststart``), as a CDN serves progressive video.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SECONDS = 3  # clip_a, its re-encode, clip_b
SIZE = "320x240"
_X264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25", "-movflags", "+faststart"]


@dataclass(frozen=True)
class Clips:
    """Paths of the generated media, all in ``folder``."""

    folder: Path

    @property
    def clip_a(self) -> Path:  # testsrc + 440 Hz sine
        return self.folder / "clip_a.mp4"

    @property
    def clip_a_reencoded(self) -> Path:  # clip_a again: other profile, CRF, audio bitrate
        return self.folder / "clip_a_reencoded.mp4"

    @property
    def clip_b(self) -> Path:  # another picture (mandelbrot) and tone (880 Hz)
        return self.folder / "clip_b.mp4"

    @property
    def ad(self) -> Path:  # a 2 s advert (rgbtestsrc), never part of the cited content
        return self.folder / "ad.mp4"

    @property
    def big(self) -> Path:  # noise at a high bitrate: about 2 MB, over a cap of 1 MB
        return self.folder / "big.mp4"

    @property
    def hls(self) -> Path:  # clip_a as HLS VOD: index.m3u8 and 1 s .ts segments
        return self.folder / "hls" / "index.m3u8"

    @property
    def photo(self) -> Path:  # a 640x480 testsrc frame
        return self.folder / "photo.jpg"

    @property
    def photo_b(self) -> Path:  # a 640x480 SMPTE colour bars frame
        return self.folder / "photo_b.jpg"


def ffmpeg(*args: str, timeout: float = 120) -> None:
    """Run ffmpeg quietly; a failure raises with ffmpeg's own message."""
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)}: {done.stderr.strip()}")


def ffprobe(path: Path) -> dict:
    """ffprobe's format and streams of ``path`` as JSON."""
    args = ["-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]
    done = subprocess.run(
        ["ffprobe", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def duration(path: Path) -> float:
    return float(ffprobe(path)["format"]["duration"])


def _lavfi(video: str, tone: int, seconds: float) -> list[str]:
    return [
        "-f",
        "lavfi",
        "-i",
        f"{video}=size={SIZE}:rate=25",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency={tone}",
        "-t",
        str(seconds),  # mandelbrot has no duration option of its own
    ]


def _write(target: Path, *args: str) -> None:
    """ffmpeg ``args`` into ``target`` by way of a temporary name in the same folder."""
    if target.exists():
        return
    part = target.with_name("part-" + target.name)
    ffmpeg(*args, str(part))
    part.rename(target)


def _hls(clips: Clips) -> None:
    """clip_a cut (stream copy) into an HLS VOD playlist of 1 s segments."""
    if clips.hls.exists():
        return
    part = clips.folder / "part-hls"
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir()
    ffmpeg(
        "-i",
        str(clips.clip_a),
        "-c",
        "copy",
        "-f",
        "hls",
        "-hls_time",
        "1",
        "-hls_playlist_type",
        "vod",
        "-hls_segment_filename",
        str(part / "seg%d.ts"),
        str(part / "index.m3u8"),
    )
    part.rename(clips.hls.parent)


def make_clips(folder: Path) -> Clips:
    """Every clip and picture in ``folder`` (made once; later calls only return the paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = Clips(folder)
    aac = ["-c:a", "aac", "-shortest"]
    _write(clips.clip_a, *_lavfi("testsrc", 440, SECONDS), *_X264, "-profile:v", "high", *aac)
    _write(
        clips.clip_a_reencoded,
        "-i",
        str(clips.clip_a),
        *_X264,
        "-profile:v",
        "main",
        "-crf",
        "30",
        "-c:a",
        "aac",
        "-b:a",
        "48k",
    )
    _write(clips.clip_b, *_lavfi("mandelbrot", 880, SECONDS), *_X264, *aac)
    _write(clips.ad, *_lavfi("rgbtestsrc", 660, 2), *_X264, *aac)
    noise = "nullsrc=size=320x240:rate=25:duration=2,geq=lum='random(1)*255':cb=128:cr=128"
    _write(clips.big, "-f", "lavfi", "-i", noise, *_X264, "-b:v", "8M", "-maxrate", "8M")
    _hls(clips)
    _write(clips.photo, "-f", "lavfi", "-i", "testsrc=size=640x480", "-frames:v", "1")
    _write(clips.photo_b, "-f", "lavfi", "-i", "smptebars=size=640x480", "-frames:v", "1")
    return clips
