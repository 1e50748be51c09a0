"""The batch format every cafe_tf dataset produces, and the helpers that build it.

A batch is a pair `(features, label)`:

- `features["dense"]`: float32 `[B, num_dense]`,
- `features["sparse"]`: a dict `{field_name: int64 [B]}`, one id per field and example,
- `label`: float32 `[B, 1]` (shaped like the model's predictions; docs/distributed.md explains why
  `(B, 1)` and not `(B,)` under a distribution strategy).

Readers work on an id matrix `[B, num_fields]` internally because one matrix is much cheaper
to generate, parse and batch than 26 separate tensors; `pack_batch` splits it into the
per-field dict at the very end of the pipeline.
"""

from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

DENSE_KEY = "dense"
SPARSE_KEY = "sparse"


class CTRData:
    """What every cafe_tf dataset exposes besides its `tf.data` pipelines.

    Attributes:
        field_names: the categorical fields, in the order of the model's embedding tables.
        vocabulary_sizes: field -> number of distinct ids the field can take (what memory
            budgets are computed from). Whether ids also lie in `[0, size)` depends on the
            dataset; each class says so.
        num_dense: width of `features["dense"]`.
    """

    def __init__(
        self, field_names: Sequence[str], vocabulary_sizes: Mapping[str, int], num_dense: int
    ):
        missing = [f for f in field_names if f not in vocabulary_sizes]
        if missing:
            raise ValueError(f"vocabulary_sizes lacks fields {missing}")
        self.field_names = list(field_names)
        self.vocabulary_sizes = {f: int(vocabulary_sizes[f]) for f in field_names}
        self.num_dense = int(num_dense)

    def element_spec(self) -> tuple[dict, tf.TensorSpec]:
        """The `tf.TensorSpec` structure of one batch (batch dimension unknown).

        Returns:
            `(features_spec, label_spec)`, equal to the `element_spec` of this object's datasets.
        """
        features = {
            DENSE_KEY: tf.TensorSpec([None, self.num_dense], tf.float32),
            SPARSE_KEY: {f: tf.TensorSpec([None], tf.int64) for f in self.field_names},
        }
        return features, tf.TensorSpec([None, 1], tf.float32)


def pack_batch(
    dense: tf.Tensor, ids: tf.Tensor, label: tf.Tensor, field_names: Sequence[str]
) -> tuple[dict, tf.Tensor]:
    """Turns matrix-form tensors into the cafe_tf batch format.

    Args:
        dense: float `[B, num_dense]`.
        ids: int64 `[B, len(field_names)]`, column `i` holding the ids of `field_names[i]`.
        label: `[B]` or `[B, 1]`, any real dtype.
        field_names: names of the id columns, in order.

    Returns:
        `(features, label)` as described in this module's docstring.

    Example:
        >>> ds = ds.map(lambda d, i, y: pack_batch(d, i, y, ["C1", "C2"]))  # doctest: +SKIP
    """
    columns = tf.unstack(tf.cast(ids, tf.int64), num=len(field_names), axis=1)
    features = {
        DENSE_KEY: tf.cast(dense, tf.float32),
        SPARSE_KEY: dict(zip(field_names, columns)),
    }
    return features, tf.reshape(tf.cast(label, tf.float32), [-1, 1])


def dataset_from_arrays(
    dense: np.ndarray,
    ids: np.ndarray,
    label: np.ndarray,
    field_names: Sequence[str],
    batch_size: int,
) -> tf.data.Dataset:
    """An in-memory dataset in the cafe_tf batch format, in the arrays' row order.

    Args:
        dense: `[N, num_dense]` floats.
        ids: `[N, len(field_names)]` integer ids.
        label: `[N]` labels.
        field_names: names of the id columns, in order.
        batch_size: rows per batch; the last batch may be smaller.

    Returns:
        A `tf.data.Dataset` of `(features, label)` batches, not shuffled.
    """
    arrays = (dense.astype(np.float32), ids.astype(np.int64), label.astype(np.float32))
    names = list(field_names)
    return (
        tf.data.Dataset.from_tensor_slices(arrays)
        .batch(batch_size)
        .map(
            lambda d, i, y: pack_batch(d, i, y, names),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .prefetch(tf.data.AUTOTUNE)
    )
