#!/usr/bin/env python3
"""Draws the add-in's ribbon and catalogue icons (a white padlock on a blue
rounded square) as PNGs in src/. Run it again only to change the icons."""
import struct
import zlib
from pathlib import Path

BLUE = (31, 95, 139, 255)
WHITE = (255, 255, 255, 255)
CLEAR = (0, 0, 0, 0)


def pixel(x, y):
    """Colour at (x, y) in a 1.0 x 1.0 square."""
    r = 0.18
    cx = min(max(x, r), 1 - r)
    cy = min(max(y, r), 1 - r)
    if (x - cx) ** 2 + (y - cy) ** 2 > r * r:
        return CLEAR
    # The lock's body.
    if 0.28 <= x <= 0.72 and 0.46 <= y <= 0.80:
        if (x - 0.5) ** 2 + (y - 0.60) ** 2 < 0.05 ** 2 or (0.48 <= x <= 0.52 and 0.60 <= y <= 0.70):
            return BLUE
        return WHITE
    # The shackle: a ring from radius 0.12 to 0.19 above the body.
    d = ((x - 0.5) ** 2 + (y - 0.46) ** 2) ** 0.5
    if y <= 0.46 and 0.12 <= d <= 0.19:
        return WHITE
    return BLUE


def png(size):
    rows = b""
    for j in range(size):
        rows += b"\0"
        for i in range(size):
            # 4x4 supersampling for smooth edges.
            acc = [0, 0, 0, 0]
            for sj in range(4):
                for si in range(4):
                    c = pixel((i + (si + 0.5) / 4) / size, (j + (sj + 0.5) / 4) / size)
                    for k in range(4):
                        acc[k] += c[k]
            rows += bytes(v // 16 for v in acc)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "src"
    for size in (16, 32, 64, 80, 128):
        (out / f"icon-{size}.png").write_bytes(png(size))
