"""`cafe-tf predict DIR`: scores Criteo files with a model saved by `cafe-tf train --save`.

Reads the serving SavedModel of `DIR/serving/` (stock TensorFlow: neither cafe_tf's layers
nor its op library score the rows) and writes a CSV with the header `probability` and
then one click probability per row read, in file and line order. Lines skipped with
`--on-error skip` get no line in the CSV.
"""

import argparse
import json
import os

import numpy as np
import tensorflow as tf

from cafe_tf.cli import criteo_files, saved_run
from cafe_tf.cli.errors import CliError
from cafe_tf.data import DENSE_KEY
from cafe_tf.data.criteo import CATEGORICAL_FIELDS, DENSE_FIELDS


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "predict",
        help="score Criteo files with a model saved by train --save",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
    )
    parser.add_argument(
        "directory",
        metavar="DIR",
        help="one saved model: DIR/<kind>/ of `cafe-tf train --save DIR` (DIR "
        "itself if it holds one only)",
    )
    criteo_files.add_arguments(parser, "the files to score, in order", batch_size=4096)
    parser.add_argument(
        "--out", required=True, metavar="CSV", help="where to write the probabilities, one per row"
    )
    parser.set_defaults(run=run)


def load_serving(directory: str):
    """The `serving_default` signature of the one model saved in `directory`."""
    runs = saved_run.run_directories(directory)
    if len(runs) > 1:
        raise CliError(f"{directory} holds {len(runs)} saved models: name one of {', '.join(runs)}")
    (run_dir,) = runs
    with open(os.path.join(run_dir, saved_run.RUN_FILE)) as f:
        record = json.load(f)
    fields, num_dense = record.get("field_names"), record.get("num_dense")
    if fields != CATEGORICAL_FIELDS or num_dense != len(DENSE_FIELDS):
        raise CliError(
            f"{run_dir} was not trained on Criteo's fields (it takes {num_dense} "
            f"dense and the categorical fields {fields})"
        )
    serving = os.path.join(run_dir, "serving")
    if not tf.saved_model.contains_saved_model(serving):
        raise CliError(f"{run_dir}: no serving SavedModel in {serving}")
    return tf.saved_model.load(serving).signatures["serving_default"]


def run(args: argparse.Namespace) -> int:
    criteo_files.check_output("--out", args.out)
    serve = load_serving(args.directory)
    rows = 0
    with open(args.out, "w") as out:
        out.write("probability\n")
        for dense, ids, _ in criteo_files.read_batches(args):
            logits = serve(
                **{DENSE_KEY: tf.constant(dense)}, **{f: tf.constant(v) for f, v in ids.items()}
            )["predictions"]
            # The models output logits; %.9g keeps every float32 probability exactly.
            np.savetxt(out, tf.sigmoid(logits).numpy().reshape(-1), fmt="%.9g")
            rows += len(dense)
    print(f"wrote {args.out}: {rows:,} probabilities")
    return 0
