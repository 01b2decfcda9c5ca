"""Render a report.html in headless Chromium and save a screenshot: a check that the self-contained
report opens and lays out without network access.

Usage: python scripts/check_report_html.py REPORT_HTML OUT_PNG [--chromium PATH] [--height PX]
Exit code 0 when the screenshot was written, 2 on a usage error or when Chromium fails.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def find_chromium(explicit: str | None = None) -> str | None:
    """Path of a Chromium binary (``explicit`` first), or None."""
    for candidate in ((explicit,) if explicit else CANDIDATES):
        found = shutil.which(candidate)
        if found:
            return found
    return None


def screenshot(report_html: Path, out_png: Path, chromium: str, width: int = 1280, height: int = 4000,
               timeout_s: float = 120.0) -> Path:
    """Screenshot ``report_html`` to ``out_png`` with headless Chromium (no network, throwaway profile)."""
    if not report_html.is_file():
        raise ValueError(f"no such file: {report_html}")
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
            f"--screenshot={out_png.resolve()}", f"--window-size={width},{height}",
            report_html.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0 or not out_png.is_file() or out_png.stat().st_size == 0:
        raise RuntimeError(f"chromium failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return out_png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_html", type=Path)
    parser.add_argument("out_png", type=Path)
    parser.add_argument("--chromium", default=None, help="Chromium binary (default: first found on PATH)")
    parser.add_argument("--height", type=int, default=4000, help="window height in pixels")
    args = parser.parse_args(argv)
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("error: no Chromium binary found", file=sys.stderr)
        return 2
    try:
        path = screenshot(args.report_html, args.out_png, chromium, height=args.height)
    except (ValueError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
