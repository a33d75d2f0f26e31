"""``python -m pollers``: every variant and whether it runs here.

``python -m pollers --markdown`` prints the variant table of ``docs/contract.md``.
"""

from __future__ import annotations

import sys

from .registry import variant_table, variants


def main() -> int:
    if sys.argv[1:] == ["--markdown"]:
        print(variant_table(), end="")
        return 0
    if sys.argv[1:]:
        print("usage: python -m pollers [--markdown]", file=sys.stderr)
        return 2
    for variant in variants():
        print(f"{variant.name:20} {'runs here' if variant.runs_here else variant.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
