"""Shrink screenshots in place for the docs: a 128-colour palette PNG is about a third of the
size of the browser's RGB one and looks the same for an app's flat colours and text.

Usage: python scripts/shrink_png.py FILE.png [...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image


def shrink(path: Path, colours: int = 128) -> tuple[int, int]:
    """Rewrite `path` as a palette PNG; return its size in bytes before and after."""
    before = path.stat().st_size
    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(colours, dither=Image.Dither.NONE)
    palette.save(path, optimize=True)
    return before, path.stat().st_size


if __name__ == "__main__":
    for name in sys.argv[1:]:
        before, after = shrink(Path(name))
        print(f"{name}: {before:,} -> {after:,} bytes")
