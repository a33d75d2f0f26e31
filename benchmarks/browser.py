"""Load a local HTML page in headless Chromium: its console errors and an expression's value.

    python -m benchmarks.browser reports/run/report.html --screenshot report.png

A short command over `benchmarks.reporting.browser`; exit status 1 if the page logged
an error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from .reporting.browser import render


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.browser",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--screenshot", type=Path, help="write a full-page PNG here")
    parser.add_argument("--expression", default="document.querySelectorAll('svg.chart').length")
    args = parser.parse_args(argv)
    visit = render(args.page, args.expression, screenshot=args.screenshot is not None)
    if args.screenshot is not None and visit.screenshot is not None:
        args.screenshot.write_bytes(visit.screenshot)
    print(json.dumps({"value": visit.value, "errors": visit.errors}, indent=2))
    return 1 if visit.errors else 0


if __name__ == "__main__":
    sys.exit(main())
