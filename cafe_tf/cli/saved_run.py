"""What `cafe-tf train --save DIR` writes for one CAFE model, and how it is read back.

`DIR/<kind>/` holds:

- `checkpoint/`: a `cafe_tf.checkpoints.make_checkpoint` of the model and its optimizer
  (tables, sketch, counters, optimizer slots, layout record), to resume or inspect;
- `serving/`: a SavedModel that serves with stock TensorFlow (`cafe_tf.serving`); its
  `serving_default` signature takes `dense` float32 [B, num_dense] and one int64 [B]
  input per categorical field, and returns `predictions` (logits [B, 1]);
- `cafe_run.json`: the model's Keras config and the data's fields, from which `load`
  rebuilds the model before restoring the checkpoint.
"""

import json
import os
from collections.abc import Sequence

import tensorflow as tf
import tf_keras

from cafe_tf import checkpoints
from cafe_tf.cli.errors import CliError
from cafe_tf.data import DENSE_KEY, SPARSE_KEY
from cafe_tf.serving import export_for_serving

RUN_FILE = "cafe_run.json"
FORMAT = 1


class FlatInputs(tf_keras.Model):
    """A CTR model called with flat inputs `{"dense": [B, n], field: [B], ...}`, the form
    a serving signature takes, instead of `{"dense": ..., "sparse": {field: ...}}`."""

    def __init__(self, model: tf_keras.Model, field_names: Sequence[str], **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.field_names = list(field_names)

    def call(self, features, training=False):
        return self.model(
            {
                DENSE_KEY: features[DENSE_KEY],
                SPARSE_KEY: {f: features[f] for f in self.field_names},
            },
            training=training,
        )


def save(directory: str, model: tf_keras.Model, data) -> None:
    """Writes the checkpoint, the serving SavedModel and `cafe_run.json` of `model`.

    Args:
      directory: created if needed; existing files of an earlier save are replaced.
      model: a trained `cafe_tf.models` model (registered with Keras, so its config
        deserializes without `custom_objects`).
      data: the dataset it was trained on (`field_names`, `num_dense`).
    """
    os.makedirs(directory, exist_ok=True)
    prefix = checkpoints.make_checkpoint(model).write(os.path.join(directory, "checkpoint", "ckpt"))
    signature = {
        DENSE_KEY: tf.TensorSpec([None, data.num_dense], tf.float32),
        **{f: tf.TensorSpec([None], tf.int64) for f in data.field_names},
    }
    flat = FlatInputs(model, data.field_names)
    flat(_example_batch(data.field_names, data.num_dense, flat=True))  # builds the wrapper
    export_for_serving(flat, os.path.join(directory, "serving"), signature)
    config = tf_keras.layers.serialize(model)
    config.pop("build_config", None)  # load() builds the model on a batch of its own
    record = {
        "format": FORMAT,
        "model": config,
        "field_names": list(data.field_names),
        "num_dense": data.num_dense,
        "checkpoint": os.path.relpath(prefix, directory),
    }
    with open(os.path.join(directory, RUN_FILE), "w") as f:
        json.dump(record, f, indent=1)


def run_directories(directory: str) -> list[str]:
    """`directory` itself if it holds a saved run, else its subdirectories that do."""
    if not os.path.isdir(directory):
        raise CliError(f"no such directory: {directory}")
    if os.path.isfile(os.path.join(directory, RUN_FILE)):
        return [directory]
    found = sorted(
        os.path.join(directory, d)
        for d in os.listdir(directory)
        if os.path.isfile(os.path.join(directory, d, RUN_FILE))
    )
    if not found:
        raise CliError(
            f"{directory} holds no saved CAFE model (no {RUN_FILE} in it or in its "
            "subdirectories; `cafe-tf train --save DIR` writes them)"
        )
    return found


def load(directory: str) -> tf_keras.Model:
    """The model saved in `directory`, rebuilt from its config and restored from its
    checkpoint (refused, naming every mismatch, if they do not match)."""
    path = os.path.join(directory, RUN_FILE)
    try:
        with open(path) as f:
            record = json.load(f)
        config, fields, num_dense = record["model"], record["field_names"], record["num_dense"]
        prefix = os.path.join(directory, record["checkpoint"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CliError(
            f"{path} is not a run record written by `cafe-tf train --save` "
            f"({type(err).__name__}: {err})"
        ) from None
    if record.get("format") != FORMAT:
        raise CliError(f"{path}: unknown format {record.get('format')!r} (expected {FORMAT})")
    model = tf_keras.layers.deserialize(config)
    model(_example_batch(fields, num_dense), training=False)  # creates the variables
    if not tf.io.gfile.exists(prefix + ".index"):
        raise CliError(f"{directory}: checkpoint {prefix} is missing")
    checkpoints.restore(checkpoints.make_checkpoint(model, optimizer=None), prefix).expect_partial()
    return model


def _example_batch(field_names, num_dense, flat=False):
    """A one-row batch of zeros, to build a model's variables."""
    ids = {f: tf.zeros([1], tf.int64) for f in field_names}
    dense = tf.zeros([1, num_dense])
    return {DENSE_KEY: dense, **ids} if flat else {DENSE_KEY: dense, SPARSE_KEY: ids}
