"""Ratio benchmarks: each figure is ours against a peer measured in the same run.

    make bench                              # all of them
    python benchmarks/run.py fetch sign     # some, by name
    python benchmarks/run.py --list         # the names
    python benchmarks/run.py --dry-run serve   # print the rows, leave the README

A benchmark is a module ``benchmarks/bench_<name>.py`` with a function
``rows() -> list[Row]`` (see harness.py: a Row is five strings, the columns of
the table). Any such module is found here without being registered, so a new
benchmark is one new file; a ``bench_*.py`` without ``rows`` is not a benchmark
(a helper, or a standalone script). Optional in a module: ``ORDER`` (an int; the
table lists benchmarks by it, then by name; 1000 when absent). Its name on the
command line is ``<name>`` with ``_`` or ``-``. Modules are imported to be found,
so they import heavy libraries inside ``rows()``, not at the top.

Rows are printed as a markdown table and written between the markers in
benchmarks/README.md: the rows of the benchmarks that ran replace theirs, the
others stay as they were, and the line under the table says when each was
measured. Timings are medians of alternating runs (harness.alternate), so a
slow moment of the machine hits both sides alike.
"""

from __future__ import annotations

import argparse
import compileall
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))  # the modules import harness as a top-level module

from harness import Row, check_rows, update_readme  # noqa: E402


def discover() -> dict[str, Callable[[], object]]:
    """Benchmark name -> its ``rows`` function, in table order."""
    found: list[tuple[int, str, ModuleType]] = []
    for path in HERE.glob("bench_*.py"):
        module = importlib.import_module(path.stem)
        if callable(getattr(module, "rows", None)):
            order = getattr(module, "ORDER", 1000)
            found.append((order, path.stem.removeprefix("bench_"), module))
    return {name: module.rows for _, name, module in sorted(found, key=lambda f: f[:2])}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and stop")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the table; leave the README as it is"
    )
    args = parser.parse_args(argv)
    benchmarks = discover()
    if args.list:
        print("\n".join(benchmarks))
        return 0
    names = [n.replace("-", "_") for n in args.names] or list(benchmarks)
    if unknown := [n for n in names if n not in benchmarks]:
        parser.error(f"no benchmark {', '.join(unknown)} (there are: {', '.join(benchmarks)})")
    # A wheel or the runtime image carries bytecode; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE would compile changed sources on every start and time that.
    compileall.compile_dir(str(REPO / "runtime" / "tekton_mlops"), quiet=1)
    results: dict[str, list[Row]] = {}
    try:
        for name in names:
            print(f"running {name} ...", file=sys.stderr)
            results[name] = check_rows(name, benchmarks[name]())
    finally:
        # A failure late in a long run keeps the figures of the benchmarks that finished.
        if results:
            print(update_readme(results, list(benchmarks), write=not args.dry_run))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
