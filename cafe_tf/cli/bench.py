"""`cafe-tf bench NAME [ARGS...]`: runs a benchmark of the source tree's benchmarks/.

Each benchmark is a script `benchmarks/NAME.py` with its own options (`cafe-tf bench
NAME --help`); it prints its figures and writes plots under `benchmarks/out/`. Without
NAME, lists the benchmarks. They ship with the repository, not with an installed wheel.
"""

import argparse
import ast
import subprocess
import sys
from pathlib import Path

from cafe_tf.cli.errors import CliError

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bench",
        help="run a benchmark by name (no name: list them)",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
    )
    parser.add_argument("name", nargs="?", metavar="NAME")
    parser.add_argument(
        "args", nargs=argparse.REMAINDER, metavar="ARGS", help="passed to the benchmark"
    )
    parser.set_defaults(run=run)


def available() -> dict[str, str]:
    """{name: first line of its docstring} of every benchmark script."""
    if not BENCHMARKS.is_dir():
        raise CliError(
            f"no benchmarks/ next to the cafe_tf package ({BENCHMARKS}): the "
            "benchmarks ship with the source tree; run from a clone"
        )
    found = {}
    for script in sorted(BENCHMARKS.glob("*.py")):
        doc = ast.get_docstring(ast.parse(script.read_text())) or ""
        found[script.stem] = doc.splitlines()[0] if doc else ""
    return found


def run(args: argparse.Namespace) -> int:
    benchmarks = available()
    if args.name is None:
        width = max(map(len, benchmarks), default=0)
        for name, summary in benchmarks.items():
            print(f"{name:<{width}}  {summary}")
        return 0
    if args.name not in benchmarks:
        raise CliError(f"no benchmark {args.name!r}; choose from {sorted(benchmarks)}")
    command = [sys.executable, str(BENCHMARKS / f"{args.name}.py"), *args.args]
    return subprocess.run(command, check=False).returncode
