"""tf.data: CAFE layers take batches straight from pipelines (map, interleave, prefetch,
experimental_distribute_dataset), with ids made in the pipeline (string hashing)."""

import model_utils as mu
import numpy as np
import pytest
import tensorflow as tf

from cafe_tf import hashing
from cafe_tf.callbacks import CafeMigration

GLOBAL_BATCH = 64
SHARDS = 4


def _hash_strings(features, labels):
    return dict(features, c=hashing.string_ids(features["c"])), labels


def _pipeline(arrays, hash_in_pipeline=True):
    """4 shards interleaved deterministically, batched, strings hashed in parallel, prefetched."""
    examples = mu.dataset(arrays, 1).unbatch()
    data = tf.data.Dataset.range(SHARDS).interleave(
        lambda i: examples.shard(SHARDS, i),
        cycle_length=2,
        block_length=3,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    data = data.batch(GLOBAL_BATCH)
    if hash_in_pipeline:
        data = data.map(_hash_strings, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return data.prefetch(tf.data.AUTOTUNE)


def test_ids_hashed_in_the_pipeline_equal_raw_strings():
    arrays = mu.make_arrays(GLOBAL_BATCH * 6, seed=2)
    hashed = _pipeline(arrays)
    raw = _pipeline(arrays, hash_in_pipeline=False)
    features, _ = next(iter(hashed))
    assert features["c"].dtype == tf.int64 and isinstance(features["v"], tf.RaggedTensor)

    a, b = mu.make_model(), mu.make_model()
    np.testing.assert_array_equal(a(features).numpy(), b(next(iter(raw))[0]).numpy())
    for model, data in ((a, hashed), (b, raw)):
        model.fit(data, epochs=1, verbose=0, callbacks=[CafeMigration(every_n_steps=2)])
    assert int(a.c_embedding.promotions.numpy()) > 0
    mu.assert_states_equal(mu.weights_state(a), mu.weights_state(b), "hashed vs raw strings")


def test_interleaved_prefetched_distributed_pipeline_trains_like_one_device():
    strategy = mu.mirrored_strategy()
    arrays = mu.make_arrays(GLOBAL_BATCH * 6 + 10, seed=4)
    steps = 7  # the last batch has 10 examples
    single = mu.make_model()
    initial = single.get_weights()
    losses = mu.BatchLosses()
    single.fit(
        _pipeline(arrays),
        epochs=1,
        steps_per_epoch=steps,
        verbose=0,
        callbacks=[CafeMigration(every_n_steps=2), losses],
    )
    with strategy.scope():
        mirrored = mu.make_model()
        mirrored.set_weights(initial)
    distributed = strategy.experimental_distribute_dataset(_pipeline(arrays))
    mirrored_losses = mu.BatchLosses()
    mirrored.fit(
        distributed,
        epochs=1,
        steps_per_epoch=steps,
        verbose=0,
        callbacks=[CafeMigration(every_n_steps=2), mirrored_losses],
    )

    replicas = mu.per_replica_cafe_state(mirrored)
    mu.assert_states_equal(replicas[0], replicas[1], "replicas")
    np.testing.assert_allclose(mirrored_losses.losses, losses.losses, rtol=1e-5, atol=1e-6)
    # The sketch's slots and counters exactly; float state within a few float32 rounding
    # steps: the all-reduce sums the replicas' gradients in another order than one device,
    # which moved scores by up to 3e-6 relative and table entries by up to 3e-7 here.
    mu.assert_states_close(
        mu.weights_state(mirrored),
        mu.weights_state(single),
        rtol=1e-5,
        atol=1e-6,
        what="weights and sketch",
    )
    assert int(mirrored.embedding.lookups.numpy()) == arrays["u"].size + arrays["v_values"].size


@pytest.mark.parametrize("kind", ["generator", "text_lines"])
def test_other_pipeline_sources(kind, tmp_path):
    """Batches from a Python generator and from parsed text lines, strings hashed in map."""
    arrays = mu.make_arrays(GLOBAL_BATCH * 2, seed=6)
    if kind == "generator":

        def rows():
            start = 0
            for u, c, x, n, y in zip(
                arrays["u"], arrays["c"], arrays["x"], arrays["v_lengths"], arrays["label"]
            ):
                yield ({"u": u, "c": c, "x": x, "v": arrays["v_values"][start : start + n]}, y)
                start += n

        data = tf.data.Dataset.from_generator(
            rows,
            output_signature=(
                {
                    "u": tf.TensorSpec([], tf.int64),
                    "c": tf.TensorSpec([], tf.string),
                    "x": tf.TensorSpec([1], tf.float32),
                    "v": tf.TensorSpec([None], tf.int64),
                },
                tf.TensorSpec([1], tf.float32),
            ),
        )
        data = data.ragged_batch(GLOBAL_BATCH)  # "v" becomes ragged, the rest stays dense
    else:
        path = tmp_path / "rows.tsv"
        start, lines = 0, []
        for u, c, x, n, y in zip(
            arrays["u"], arrays["c"], arrays["x"], arrays["v_lengths"], arrays["label"]
        ):
            v = " ".join(str(i) for i in arrays["v_values"][start : start + n])
            start += n
            lines.append(f"{y[0]:.0f}\t{u}\t{v}\t{c}\t{float(x[0])!r}")
        path.write_text("\n".join(lines) + "\n")

        def parse(line):
            parts = tf.strings.split(line, "\t").to_tensor()
            label = tf.strings.to_number(parts[:, 0])[:, None]
            features = {
                "u": tf.strings.to_number(parts[:, 1], tf.int64),
                "v": tf.strings.to_number(tf.strings.split(parts[:, 2]), tf.int64),
                "c": parts[:, 3],
                "x": tf.strings.to_number(parts[:, 4])[:, None],
            }
            return features, label

        data = tf.data.TextLineDataset(str(path)).batch(GLOBAL_BATCH).map(parse)
    data = data.map(_hash_strings, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)
    expected = mu.dataset(arrays, GLOBAL_BATCH).map(_hash_strings)
    model = mu.make_model()
    for (got, y), (want, y_want) in zip(data, expected):
        np.testing.assert_array_equal(model(got).numpy(), model(want).numpy())
        np.testing.assert_array_equal(y.numpy(), y_want.numpy())
    before = int(model.embedding.lookups.numpy())
    model.fit(data, epochs=1, verbose=0)
    assert (
        int(model.embedding.lookups.numpy()) == before + arrays["u"].size + arrays["v_values"].size
    )
