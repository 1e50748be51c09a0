"""Criteo files as the `cafe-tf` commands read them: the checks, the readers and the
file-by-file reading with progress that `vocab` and `predict` share.

Every command reads through `cafe_tf.data.CriteoTSV` / `CriteoParquet`, so they parse,
validate and skip (`--on-error`) exactly as training does.
"""

import argparse
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import get_args

import numpy as np

from cafe_tf.cli.errors import CliError
from cafe_tf.data.batch import DENSE_KEY, SPARSE_KEY
from cafe_tf.data.criteo import ErrorPolicy

FORMATS = ("criteo-tsv", "criteo-parquet")
# Rows between two progress lines while a file is read.
PROGRESS_ROWS = 1_000_000


def add_arguments(parser: argparse.ArgumentParser, files_help: str, batch_size: int) -> None:
    """`--data`, `--files`, `--on-error` and `--batch-size`, as `vocab` and `predict` take them."""
    parser.add_argument(
        "--data",
        choices=FORMATS,
        required=True,
        help="criteo-tsv: Criteo's tab-separated lines (plain or .gz); "
        "criteo-parquet: Parquet with Criteo's columns",
    )
    parser.add_argument("--files", nargs="+", required=True, metavar="FILE", help=files_help)
    parser.add_argument(
        "--on-error",
        choices=get_args(ErrorPolicy),
        default="raise",
        help="stop at a malformed line (default), or skip and count it",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=batch_size,
        help="rows read at a time (default %(default)s)",
    )


def check_files(files: Sequence[str]) -> None:
    """CliError for a file that is absent or empty, before anything is read."""
    absent = [f for f in files if not os.path.isfile(f)]
    if absent:
        raise CliError(f"no such file: {', '.join(absent)}")
    # Found before reading, not after: an empty file holds no examples.
    empty = [f for f in files if os.path.getsize(f) == 0]
    if empty:
        raise CliError(f"empty file (no examples): {', '.join(empty)}")


def check_output(flag: str, path: str) -> None:
    """CliError if the directory that would hold the output file `path` does not exist."""
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise CliError(f"{flag} {path}: its directory does not exist")


def reader(
    data: str, files: Sequence[str], vocabulary_sizes: Mapping[str, int] | None, on_error: str
):
    """The `CriteoTSV` or `CriteoParquet` reader of `files`, for `--data` `data`."""
    from cafe_tf import data as data_lib

    readers = {"criteo-tsv": data_lib.CriteoTSV, "criteo-parquet": data_lib.CriteoParquet}
    return readers[data](files, vocabulary_sizes, on_error)


def read_batches(args: argparse.Namespace) -> Iterator[tuple[np.ndarray, dict, np.ndarray]]:
    """The batches of `args.files`, file by file and in order, as numpy arrays.

    Prints a line per `PROGRESS_ROWS` rows and per file, and at the end the rows
    read and the malformed ones skipped.

    Yields:
      `(dense [B, 13] float32, {field: int64 [B]}, label [B] float32)`.
    """
    if args.batch_size <= 0:
        raise CliError(f"--batch-size must be > 0, got {args.batch_size}")
    check_files(args.files)
    total = skipped = 0
    start = time.time()
    for number, path in enumerate(args.files, 1):
        files = reader(args.data, [path], None, args.on_error)
        rows, shown = 0, 0
        for features, label in files.dataset(args.batch_size):
            sparse = {f: ids.numpy() for f, ids in features[SPARSE_KEY].items()}
            yield features[DENSE_KEY].numpy(), sparse, label.numpy()[:, 0]
            rows += len(label)
            if rows - shown >= PROGRESS_ROWS:
                shown = rows
                print(f"  {path}: {rows:,} rows ({time.time() - start:.0f} s)", flush=True)
        skipped += sum(files.skipped().values())
        total += rows
        print(
            f"[{number}/{len(args.files)}] {path}: {rows:,} rows; {total:,} in all "
            f"({time.time() - start:.0f} s)",
            flush=True,
        )
    if args.on_error == "skip":
        print(f"skipped {skipped:,} malformed line(s)")
    if not total:
        raise CliError("the files hold no valid rows")
