"""`cafe-tf`, the command line of cafe_tf.

    cafe-tf vocab --data criteo-tsv | criteo-parquet --files FILE... --out JSON
    cafe-tf train [--data synthetic | criteo-tsv | criteo-parquet | movielens] ...
    cafe-tf inspect DIR
    cafe-tf predict DIR --data criteo-tsv | criteo-parquet --files FILE... --out CSV
    cafe-tf bench [NAME [ARGS...]]

`vocab` counts the distinct ids per field of Criteo files (the vocabulary sizes `train`
takes), `train` compares CAFE with other embeddings under one memory budget, `inspect`
shows what a CAFE layer saved by `train --save` has learned, `predict` scores files with
a saved model, and `bench` runs the benchmarks.
A problem the user can fix (bad arguments, missing or malformed files, a budget too
small) ends with one `cafe-tf <command>: error: ...` line on stderr and exit code 2
(1 when found in the data while training), never with a traceback.
"""

import argparse
import re
import sys
from collections.abc import Sequence

import tensorflow as tf

from cafe_tf.checkpoints import CheckpointMismatchError
from cafe_tf.cli import bench, inspection, predict, train, vocab
from cafe_tf.cli.errors import CliError

__all__ = ["CliError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The `cafe-tf` parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="cafe-tf",
        description="CAFE embeddings under a memory budget: count the "
        "vocabulary, train, inspect, predict, benchmark. `cafe-tf COMMAND --help` describes "
        "each command.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (vocab, train, inspection, predict, bench):
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `cafe-tf` with `argv` (default: the process arguments); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # a usage error exits with code 2 here
    try:
        return args.run(args) or 0
    except (CliError, CheckpointMismatchError, OSError, ImportError) as err:
        return _fail(args.command, str(err), 2)
    except ValueError as err:  # configs and readers reject bad values with ValueError
        return _fail(args.command, str(err), 2)
    except tf.errors.OpError as err:  # e.g. a malformed line found while reading the data
        return _fail(args.command, op_error_text(err), 1)


def op_error_text(err: tf.errors.OpError) -> str:
    """The message of a TF runtime error without the graph node TF appends to it."""
    text = err.message.split("\n\t [[")[0].strip()
    match = re.fullmatch(r"assertion failed: \[(.*)\]", text, flags=re.S)
    return match.group(1) if match else text


def _fail(command: str, message: str, code: int) -> int:
    print(f"cafe-tf {command}: error: {message}", file=sys.stderr)
    return code
