"""Which files are videos (no decoding library needed to ask)."""

from __future__ import annotations

from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv")


def video_files(inputs: list[Path]) -> list[Path]:
    """The video files named, or found (sorted, not recursive) in the folders named; a
    file reached twice (under any path to it) counts once, where it first appears."""
    found: dict[Path, Path] = {}
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            named = sorted(p for p in item.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        else:
            named = [item]
        for file in named:
            found.setdefault(file.resolve(), file)
    return list(found.values())
