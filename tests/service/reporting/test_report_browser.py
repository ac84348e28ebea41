"""The HTML report as a browser draws it: headless Chromium takes a screenshot, and the
chart colours must show up where the charts belong, in quantity.

Needs the Debian package ``chromium`` (``apt-get install -y chromium``); without it this
test fails, on purpose, rather than being skipped.

Set ``PTNUDGE_REPORT_SCREENSHOT=docs/adherence-report.png`` to keep the screenshot (that is
how the one in the docs is made).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from service.reporting.adherence import AdherenceReport, build_report, period_start
from service.reporting.reports import GOOD_COLOUR, KIND_COLOUR, LOW_COLOUR, PAIN_COLOUR, render_html
from tests.conftest import dispose_database, new_database
from tests.service.reporting.report_data import realistic_clinic

CHROMIUM = Path("/usr/bin/chromium")
WIDTH, HEIGHT = 1200, 1600
NOW = dt.datetime(2026, 11, 26, 20, 0, tzinfo=dt.UTC)
SAVE_TO = "PTNUDGE_REPORT_SCREENSHOT"

RGB = tuple[int, int, int]


@pytest.fixture
def report(tmp_path: Path) -> Iterator[AdherenceReport]:
    """A month at a realistic clinic (one backend is enough: this tests the drawing)."""
    db = new_database("sqlite", tmp_path)
    try:
        with Session(db.engine) as session:
            clinic = realistic_clinic(session, now=NOW)
            since = period_start(None, zone=clinic.timezone, now=NOW)  # the CLI's default
            yield build_report(session=session, clinic=clinic, since=since, now=NOW)
    finally:
        dispose_database(db)


def test_the_report_shows_its_charts_in_a_real_browser(
    report: AdherenceReport, tmp_path: Path
) -> None:
    page = tmp_path / "adherence.html"
    page.write_text(render_html(report), encoding="utf-8")

    image = decode_png(screenshot(page, tmp_path).read_bytes())

    assert (image.width, image.height) == (WIDTH, HEIGHT)
    good, low = image.find(GOOD_COLOUR), image.find(LOW_COLOUR)
    kinds, pain = image.find(KIND_COLOUR), image.find(PAIN_COLOUR)
    spark = good + low
    # Weekly bars: green and red, both in quantity, one band of bars per patient row.
    assert len(good) > 5_000
    assert len(low) > 1_000
    assert len(bands(sorted({y for _, y in spark}))) == len(report.patients)
    # The per-kind chart sits below the table, one long bar per kind.
    assert min(y for _, y in kinds) > max(y for _, y in spark)
    assert len(bands(sorted({y for _, y in kinds}))) == len(report.kinds)
    assert len(kinds) > len(report.kinds) * 18 * 200
    # Pain lines: to the right of the weekly bars, within the table, one per patient with scores.
    assert min(x for x, _ in pain) > max(x for x, _ in spark)
    assert max(y for _, y in pain) < min(y for _, y in kinds)
    with_pain = sum(1 for patient in report.patients if patient.pain.points)
    assert len(bands(sorted({y for _, y in pain}))) == with_pain
    assert len(pain) > with_pain * 100


def screenshot(page: Path, tmp_path: Path) -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: the HTML report is checked in headless Chromium. "
            "Install it with: apt-get update && apt-get install -y chromium"
        )
    png = tmp_path / "report.png"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-color-profile=srgb",  # chart colours come out exactly as written
        "--force-device-scale-factor=1",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={png}",
        f"--window-size={WIDTH},{HEIGHT}",
        page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert png.exists(), f"chromium made no screenshot (exit {result.returncode}):\n{result.stderr}"
    if target := os.environ.get(SAVE_TO):
        shutil.copyfile(png, target)
    return png


def bands(values: list[int], gap: int = 4) -> list[tuple[int, int]]:
    """Sorted coordinates grouped into runs; a jump of more than ``gap`` starts a new run."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and value - runs[-1][1] <= gap:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


# --- a small PNG reader (8-bit RGB/RGBA, no interlace: what Chromium writes) ---------------


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    channels: int
    rows: list[bytes]

    def find(self, colour: str, tolerance: int = 2) -> list[tuple[int, int]]:
        """Every (x, y) whose colour is within ``tolerance`` of ``#rrggbb`` on each channel."""
        red, green, blue = bytes.fromhex(colour.removeprefix("#"))
        near = range(-tolerance, tolerance + 1)
        wanted = {bytes((red + r, green + g, blue + b)) for r in near for g in near for b in near}
        step = self.channels
        return [
            (x, y)
            for y, row in enumerate(self.rows)
            for x in range(self.width)
            if row[x * step : x * step + 3] in wanted
        ]


def decode_png(data: bytes) -> Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    header, idat = _chunks(data[8:])
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8, "unsupported PNG bit depth"
    assert colour_type in {2, 6}, "unsupported PNG colour type"
    assert interlace == 0, "interlaced PNG"
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], raw[start + 1 : start + 1 + stride]
        previous = _unfilter(kind, line, previous, channels)
        rows.append(previous)
    return Image(width, height, channels, rows)


def _chunks(data: bytes) -> tuple[bytes, bytes]:
    header, idat, position = b"", bytearray(), 0
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        position += length + 12
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    return header, bytes(idat)


def _add_bytes(a: bytes, b: bytes) -> bytes:
    """Byte-wise (a + b) mod 256 of two equal-length strings at C speed: add the low seven
    bits of every byte (no carry can cross a byte), then put the top bits back with XOR."""
    n = len(a)
    low = int.from_bytes(b"\x7f" * n, "big")
    high = int.from_bytes(b"\x80" * n, "big")
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    total = ((x & low) + (y & low)) ^ ((x ^ y) & high)
    return total.to_bytes(n, "big")


def _unfilter(kind: int, line: bytes, previous: bytes, bpp: int) -> bytes:
    if kind == 0:
        return line
    if kind == 2:  # Up
        return _add_bytes(line, previous)
    out = bytearray(line)
    for i in range(len(out)):
        left = out[i - bpp] if i >= bpp else 0
        up = previous[i]
        if kind == 1:  # Sub
            out[i] = (out[i] + left) & 0xFF
        elif kind == 3:  # Average
            out[i] = (out[i] + ((left + up) >> 1)) & 0xFF
        elif kind == 4:  # Paeth
            corner = previous[i - bpp] if i >= bpp else 0
            out[i] = (out[i] + _paeth(left, up, corner)) & 0xFF
        else:
            raise AssertionError(f"unknown PNG filter {kind}")
    return bytes(out)


def _paeth(left: int, up: int, corner: int) -> int:
    estimate = left + up - corner
    to_left, to_up, to_corner = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
    if to_left <= to_up and to_left <= to_corner:
        return left
    return up if to_up <= to_corner else corner
