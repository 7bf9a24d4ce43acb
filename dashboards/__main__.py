"""``python -m dashboards [--check]``: write (or compare) every generated rule file and board."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dashboards.build import generated

ROOT = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a committed file is not what we generate"
    )
    args = parser.parse_args(argv)
    files = generated()
    stale = [name for name, text in files.items() if _read(ROOT / name) != text]
    extra = _unknown(set(files))
    if args.check:
        for name in [*stale, *extra]:
            print(f"dashboards/{name} differs from what the code generates", file=sys.stderr)
        return 1 if stale or extra else 0
    for name in stale:
        (ROOT / name).write_text(files[name], encoding="utf-8")
        print(f"wrote dashboards/{name}")
    for name in extra:
        (ROOT / name).unlink()
        print(f"removed dashboards/{name}")
    return 0


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def _unknown(known: set[str]) -> list[str]:
    """Files in the shipped directories that nothing generates (the chart would ship them)."""
    found = [p for d in ("rules", "grafana") for p in sorted((ROOT / d).iterdir())]
    return [str(p.relative_to(ROOT)) for p in found if str(p.relative_to(ROOT)) not in known]


if __name__ == "__main__":
    sys.exit(main())
