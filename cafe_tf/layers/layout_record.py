"""The checkpointed layout of CAFE layers, so a checkpoint of another layout is refused.

A CAFE layer's variables mean something only under its layout (features, vocabulary
sizes, rows per feature, sketch buckets and slot format). Each layer tracks a
`LayerLayoutRecord` of its own, so every checkpoint of it (`save_weights`, a plain
`tf.train.Checkpoint`) carries the layout, and restoring it into a layer of another
layout raises `CheckpointMismatchError`. `cafe_tf.checkpoints` builds on this for whole
models.
"""

import json
from typing import Any

import tensorflow as tf

# What the sketch's variables mean (docs/sketch.md). 1: separate rows/tags/row_slot
# variables; 2: keys, and one packed int32 word per slot plus an owner and a tag per
# hot row (16-byte slots); 3: one int64 word per slot (32-bit fingerprint, int32 hot
# row and tag or cold marker) and a float32 score (12-byte slots), one bucket of c slots
# per hot row; 4: the same slots, sized by bytes per hot row (16 by default: about 4/3 of
# a slot per hot row, in buckets of 16 or more).
SKETCH_STATE_VERSION = 4
_HINT = (
    "A CAFE layer's shapes and row mapping follow from its features (names, order, "
    "vocabulary sizes) and its CafeConfig (embedding_dim, compression_ratio or "
    "budget_bytes, hot_share, slots_per_bucket, multi_level, medium_share, "
    "share_hashed_tables): build the "
    "model with the values the checkpoint was written with."
)


class CheckpointMismatchError(ValueError):
    """A checkpoint does not match the model it is restored into."""


def layer_layout(layer: Any) -> dict[str, Any]:
    """What a CAFE layer's state means: changing any of these invalidates its checkpoint."""
    sketch = layer.sketch_config
    layout = {
        "class": type(layer).__name__,
        "features": [[f.name, f.vocabulary_size] for f in layer.features],
        "embedding_dim": layer.config.embedding_dim,
        "hot_rows": layer.layout.hot_rows,
        "hashed_rows": list(layer.layout.hashed_rows),
        "medium_rows": list(layer.layout.medium_rows),
        "multi_level": bool(layer.multi_level),
        "num_buckets": sketch.num_buckets,
        "slots_per_bucket": sketch.slots_per_bucket,
        # What the sketch's variables mean (SKETCH_STATE_VERSION).
        "sketch_state_version": SKETCH_STATE_VERSION,
    }
    # Recorded only when shared, so that the records of per-feature tables, and the
    # checkpoints that hold them, stay as they were.
    if layer.layout.shared_hashed_tables:
        layout["shared_hashed_tables"] = True
    return layout


def layout_differences(saved: dict[str, dict], current: dict[str, dict]) -> list[str]:
    """How the layouts `saved` ({layer name: layer_layout}) differ from `current`."""
    problems = []
    for name in sorted(set(saved) | set(current)):
        if name not in current:
            problems.append(
                f"CAFE layer '{name}' is in the checkpoint but not in this model "
                f"(this model has {sorted(current)})"
            )
            continue
        if name not in saved:
            problems.append(
                f"CAFE layer '{name}' of this model is not in the checkpoint "
                f"(the checkpoint has {sorted(saved)})"
            )
            continue
        saved_version = saved[name].get("sketch_state_version", 1)
        if saved_version != current[name].get("sketch_state_version"):
            problems.append(
                f"CAFE layer '{name}': sketch_state_version is {saved_version} in the checkpoint "
                f"but {current[name].get('sketch_state_version')} in this model: the checkpoint "
                f"holds an older sketch layout (version {saved_version}; this cafe_tf reads "
                f"version {SKETCH_STATE_VERSION}, 12-byte fingerprint slots sized by bytes per hot "
                f"row) and cannot be "
                f"restored; retrain, or restore it with the cafe_tf release that wrote it"
            )
        for field in sorted(set(saved[name]) | set(current[name])):
            if field == "sketch_state_version":
                continue
            if field == "shared_hashed_tables":
                saved_shared = bool(saved[name].get(field))
                if saved_shared != bool(current[name].get(field)):
                    problems.append(
                        f"CAFE layer '{name}': the checkpoint holds "
                        f"{'shared' if saved_shared else 'per-feature'} hashed tables, this "
                        f"model {'per-feature' if saved_shared else 'shared'} ones: build "
                        f"the layer with CafeConfig(share_hashed_tables={saved_shared})"
                    )
                continue
            if saved[name].get(field) != current[name].get(field):
                problems.append(
                    f"CAFE layer '{name}': {field} is {saved[name].get(field)} in "
                    f"the checkpoint but {current[name].get(field)} in this model"
                )
    return problems


def mismatch_message(where: str, problems: list[str]) -> str:
    """The text of a `CheckpointMismatchError` for `problems` found in `where`."""
    return (
        f"{where} does not match this model; nothing was restored:\n  - "
        + "\n  - ".join(problems)
        + "\n"
        + _HINT
    )


class LayoutRecord(tf.train.experimental.PythonState):
    """A checkpointed record of CAFE layouts; restoring it (directly through
    `tf.train.Checkpoint.restore`, too) raises `CheckpointMismatchError` when the
    checkpoint's layouts differ from the current ones."""

    def current(self) -> dict[str, dict]:
        """{layer name: layer_layout} of the layers recorded, as they are now."""
        raise NotImplementedError

    def problems(self, saved: str) -> list[str]:
        """How the serialized layouts `saved` differ from the current ones."""
        raise NotImplementedError

    def deserialize(self, string_value):
        problems = self.problems(
            string_value.decode() if isinstance(string_value, bytes) else string_value
        )
        if problems:
            raise CheckpointMismatchError(mismatch_message("a checkpoint", problems))


class LayerLayoutRecord(LayoutRecord):
    """The layout of one CAFE layer, tracked by the layer itself. Keyed by the layer's
    current name: Keras matches checkpointed layers by position, not by name."""

    def __init__(self, layer: Any):
        self._layer = layer

    def current(self) -> dict[str, dict]:
        return {self._layer.name: layer_layout(self._layer)}

    def serialize(self) -> str:
        return json.dumps(layer_layout(self._layer), sort_keys=True)

    def problems(self, saved: str) -> list[str]:
        return layout_differences({self._layer.name: json.loads(saved)}, self.current())
