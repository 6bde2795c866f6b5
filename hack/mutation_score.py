"""Per-module mutation score of a mutmut run: killed mutants over all mutants.

Reads the ``.meta`` files mutmut leaves beside each mutated module (``exit_code_by_key``)
and prints one line per module and the total; with ``--min``, exits 1 when any module
scores below that percentage.
A mutant no test covers counts against the score, as one that survived does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# mutmut 3's exit codes (mutmut/stats.py, status_by_exit_code) that mean the tests noticed
# the mutant: failed (1, 3), timed out (24, 36, 152, 255, -24: a mutant that makes the code
# hang is caught by the test timeout as CI would catch it), crashed (-9, -11) or was caught
# by a type check (37). Everything else (survived 0, no tests 5/33, skipped 34,
# suspicious 35, not checked) counts as not killed.
KILLED = {1, 3, 24, 36, 152, 255, -24, -9, -11, 37}


def score(meta: Path) -> tuple[int, int, list[str]]:
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    killed, survivors = 0, []
    for name, code in sorted(codes.items()):
        if code in KILLED:
            killed += 1
        else:
            survivors.append(f"{name} (exit {code})")
    return killed, len(codes), survivors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mutants", type=Path, help="the mutants/ folder of a mutmut run")
    parser.add_argument(
        "--min", type=float, default=0.0, help="fail when a module scores below this percentage"
    )
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    args = parser.parse_args()
    total_killed = total = 0
    lines, below = [], []
    for meta in sorted(args.mutants.rglob("*.py.meta")):
        killed, count, survivors = score(meta)
        if not count:
            continue
        total_killed, total = total_killed + killed, total + count
        module = meta.relative_to(args.mutants).as_posix().removesuffix(".meta")
        lines.append(f"{module:45} {killed:4}/{count:<4} killed  {100 * killed / count:5.1f}%")
        if 100 * killed / count < args.min:
            below.append(module)
        if args.survivors:
            lines += [f"    survived: {s}" for s in survivors]
    if not total:
        print("no mutants found", file=sys.stderr)
        return 1
    print("\n".join(lines))
    overall = 100 * total_killed / total
    print(f"{'total':45} {total_killed:4}/{total:<4} killed  {overall:5.1f}%")
    if below:
        print(f"below {args.min:g}%: {', '.join(below)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
