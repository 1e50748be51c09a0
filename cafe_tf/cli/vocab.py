"""`cafe-tf vocab`: counts the distinct ids of each field of Criteo files.

Writes `{"C1": n, ..., "C26": n}` as JSON, the file `cafe-tf train --vocabulary-sizes`
takes to size the budget. A missing value counts as one id of its field (the readers give
it an id of its own). The count is exact: the distinct ids of each field are held as a
sorted int64 array, 8 bytes per distinct id (Criteo Kaggle's 33.8M ids: about 270 MB),
plus, while a batch of new ids is merged in, up to three times its largest field
(Criteo Kaggle's C3, 10.1M ids: about 240 MB).
"""

import argparse
import json

import numpy as np

from cafe_tf.cli import criteo_files

# New ids gathered per field before they are merged into its sorted array: merging
# costs a pass over the array, so a field is merged once per this many new ids.
MERGE_IDS = 1 << 22


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "vocab",
        help="count the distinct ids per field of Criteo files (for train --vocabulary-sizes)",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog=" ".join(__doc__.split("\n\n")[1].split()),
    )
    criteo_files.add_arguments(
        parser, "the files to count, e.g. every training day", batch_size=65_536
    )
    parser.add_argument(
        "--out", required=True, metavar="JSON", help="where to write {field: distinct ids}"
    )
    parser.set_defaults(run=run)


class DistinctIds:
    """The exact distinct ids of each field, added batch by batch.

    Example:
        >>> distinct = DistinctIds(["C1"])
        >>> distinct.add({"C1": np.array([5, 3, 5])})
        >>> distinct.add({"C1": np.array([3, 9])})
        >>> distinct.counts()
        {'C1': 3}
    """

    def __init__(self, fields: list[str]):
        self._sorted = {f: np.empty(0, np.int64) for f in fields}
        self._new: dict[str, list[np.ndarray]] = {f: [] for f in fields}
        self._new_size = {f: 0 for f in fields}

    def add(self, ids: dict[str, np.ndarray]) -> None:
        """Adds one batch: `{field: int64 ids}`."""
        for field, values in ids.items():
            values = np.unique(values)
            self._new[field].append(values)
            self._new_size[field] += len(values)
            if self._new_size[field] >= MERGE_IDS:
                self._merge(field)

    def counts(self) -> dict[str, int]:
        """{field: number of distinct ids added}."""
        for field in self._sorted:
            self._merge(field)
        return {f: len(ids) for f, ids in self._sorted.items()}

    def _merge(self, field: str) -> None:
        if not self._new[field]:
            return
        merged = np.concatenate([self._sorted[field], np.unique(np.concatenate(self._new[field]))])
        merged.sort(kind="stable")  # timsort: two sorted runs merge in one pass
        keep = np.ones(len(merged), bool)
        keep[1:] = merged[1:] != merged[:-1]
        self._sorted[field] = merged[keep]
        self._new[field], self._new_size[field] = [], 0


def run(args: argparse.Namespace) -> int:
    criteo_files.check_output("--out", args.out)
    distinct = None
    for _, ids, _ in criteo_files.read_batches(args):
        distinct = distinct or DistinctIds(list(ids))
        distinct.add(ids)
    counts = distinct.counts()
    with open(args.out, "w") as f:
        json.dump(counts, f, indent=1)
    print(
        f"{len(counts)} fields, {sum(counts.values()):,} distinct ids: "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
    )
    print(f"wrote {args.out} (cafe-tf train --vocabulary-sizes {args.out})")
    return 0
