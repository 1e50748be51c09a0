"""MirroredStrategy (2 logical CPUs): CAFE training matches one device, replicas stay identical.

Run as a script, this file is the child of the all-gather edge-case test (empty
per-replica batches used to crash TF's collective all-gather, so that runs in its
own process).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1]  # model_utils.py, sketch_utils.py
ROOT = TESTS.parent


# ---- child: all-gather edge cases ----------------------------------------------------------
def edge_cases_main():
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import tf_keras

    from cafe_tf import hashing
    from cafe_tf.layers import CafeConfig, CafeEmbeddingCollection, FeatureConfig

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    config = CafeConfig(
        embedding_dim=4, compression_ratio=10, threshold=1e12, importance="frequency"
    )
    features = [FeatureConfig("a", 1000)]
    with strategy.scope():
        layer = CafeEmbeddingCollection(features, config, name="edge")
        layer.build(None)
        optimizer = tf_keras.optimizers.Adam(0.01)
        optimizer.build(layer.trainable_weights)
    # Single-device oracles fed the global batch in replica order, and reversed.
    oracle = CafeEmbeddingCollection(features, config, name="oracle")
    reversed_oracle = CafeEmbeddingCollection(features, config, name="reversed")

    def mirrored_step(ids, weights):
        def replica_fn(ids, weights):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(layer({"a": ids}, {"a": weights}, training=True)["a"])
            grads = tape.gradient(loss, layer.trainable_weights)
            optimizer.apply_gradients(zip(grads, layer.trainable_weights))

        strategy.run(replica_fn, args=(ids, weights))

    step = tf.function(mirrored_step)

    def oracle_step(model, ids, weights):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model({"a": ids}, {"a": weights}, training=True)["a"])
        tape.gradient(loss, model.trainable_weights)

    def sketch(model, replica=0):
        out = {}
        for v in model.sketch.state_variables + [model.lookups, model.hot_lookups]:
            copies = getattr(v, "values", (v,))
            out[v.name.split("/")[-1].split(":")[0]] = copies[replica].numpy()
        return out

    rag = lambda rows, dtype=tf.int64: tf.ragged.constant(rows, dtype, ragged_rank=1)  # noqa
    cases = [  # (replica 0 ids, weights), (replica 1 ids, weights)
        (
            "unequal lengths, order-sensitive sums",
            ([[5], [6, 7]], [[1e8], [1.0, 1.0]]),
            ([[5, 5, 5], [5, 5, 5]], [[1.0] * 3, [1.0] * 3]),
        ),
        ("replica 1 empty", ([[8, 9]], [[1.0, 2.0]]), ([[]], [[]])),
        ("every replica empty", ([[]], [[]]), ([[]], [[]])),
        ("replica 0 empty", ([[], []], [[], []]), ([[10]], [[3.0]])),
    ]
    # The sketch keeps fingerprints: that of id 5 of the first feature.
    fingerprint_5 = int(
        hashing.fingerprint(hashing.field_keys(tf.constant([5], tf.int64), 0)).numpy()[0]
    )
    report = []
    for name, (ids0, w0), (ids1, w1) in cases:
        per_replica = [(rag(ids0), rag(w0, tf.float32)), (rag(ids1), rag(w1, tf.float32))]
        values = strategy.experimental_distribute_values_from_function(
            lambda ctx: per_replica[ctx.replica_id_in_sync_group]  # noqa: B023
        )
        step(*values)
        oracle_step(oracle, rag(ids0 + ids1), rag(w0 + w1, tf.float32))
        oracle_step(reversed_oracle, rag(ids1 + ids0), rag(w1 + w0, tf.float32))
        expected = sketch(oracle)
        for replica in range(2):
            got = sketch(layer, replica)
            for key in expected:
                np.testing.assert_array_equal(
                    got[key], expected[key], err_msg=f"{name}: replica {replica}: {key}"
                )
        fingerprints = np.right_shift(expected["slots"].reshape(-1).view(np.uint64), 32)
        scores = expected["scores"].reshape(-1)[fingerprints == np.uint64(fingerprint_5)]
        report.append(
            {
                "case": name,
                "lookups": int(expected["lookups"]),
                "score_5": float(scores[0]) if scores.size else None,
                "order_matters": not np.array_equal(
                    sketch(reversed_oracle)["scores"], expected["scores"]
                ),
            }
        )
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(TESTS)]
    edge_cases_main()
    sys.exit(0)


# ---- the tests -----------------------------------------------------------------------------
import model_utils as mu  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from cafe_tf.callbacks import CafeMigration  # noqa: E402
from cafe_tf.checkpoints import make_checkpoint, restore  # noqa: E402
from cafe_tf.serving import export_for_serving  # noqa: E402

GLOBAL_BATCH = 64
NUM_EXAMPLES = GLOBAL_BATCH * 7 + 33  # 8 global batches, the last one 33 (split 17 / 16)
STEPS_PER_EPOCH, EPOCHS = 8, 2
# Exact in every run; scores and tables are float sums of gradient norms, which
# depend on the summation order of the per-replica losses.
STRUCTURE = ("slots", "batches", "promotions", "demotions", "lookups", "hot_lookups")


@pytest.fixture(scope="module")
def strategy():
    return mu.mirrored_strategy()


def _is_structure(name):
    return name.split("/")[-1].split(":")[0] in STRUCTURE


def _per_replica_counts(strategy, dataset):
    """Per global batch: [(examples, v ids) of replica 0, of replica 1]."""
    counts = []
    for features, labels in strategy.experimental_distribute_dataset(dataset):
        counts.append(
            [
                (int(tf.shape(label)[0]), int(tf.size(f["v"].flat_values)))
                for f, label in zip(
                    strategy.experimental_local_results(features),
                    strategy.experimental_local_results(labels),
                )
            ]
        )
    return counts


def _distinct_pairs_per_replica(strategy, dataset):
    """{layer: sum over batches and replicas of the distinct (id, feature) pairs}."""
    total = {"cafe": 0, "cafe_c": 0}
    for features, _ in strategy.experimental_distribute_dataset(dataset):
        for f in strategy.experimental_local_results(features):
            total["cafe"] += len(np.unique(f["u"].numpy())) + len(
                np.unique(f["v"].flat_values.numpy())
            )
            total["cafe_c"] += len(np.unique(f["c"].numpy()))
    return total


@pytest.mark.parametrize("importance, multi_level", [("gradient", False), ("frequency", True)])
def test_mirrored_fit_matches_single_device_and_replicas_are_identical(
    strategy, importance, multi_level, tmp_path
):
    config = mu.cafe_config(importance=importance, multi_level=multi_level, medium_share=0.3)
    c_config = mu.cafe_config(embedding_dim=4, compression_ratio=50, importance=importance)
    arrays = mu.make_arrays(NUM_EXAMPLES, seed=1)
    batches = mu.dataset(arrays, GLOBAL_BATCH)
    counts = _per_replica_counts(strategy, batches)
    exchanged = _distinct_pairs_per_replica(strategy, batches)
    assert exchanged["cafe"] < sum(r[1] for c in counts for r in c) + NUM_EXAMPLES  # repeats
    assert counts[-1] == [(17, counts[-1][0][1]), (16, counts[-1][1][1])]
    assert any(r0[1] != r1[1] for r0, r1 in counts)  # unequal per-replica id counts

    single = mu.make_model(config, c_config=c_config)
    initial = single.get_weights()
    single_losses = mu.BatchLosses()
    single.fit(
        batches.repeat(),
        epochs=EPOCHS,
        steps_per_epoch=STEPS_PER_EPOCH,
        verbose=0,
        callbacks=[CafeMigration(every_n_steps=2), single_losses],
    )

    with strategy.scope():
        mirrored = mu.make_model(config, c_config=c_config)
        mirrored.set_weights(initial)
    mirrored_losses = mu.BatchLosses()
    mirrored.fit(
        strategy.experimental_distribute_dataset(batches.repeat()),
        epochs=EPOCHS,
        steps_per_epoch=STEPS_PER_EPOCH,
        verbose=0,
        callbacks=[CafeMigration(every_n_steps=2), mirrored_losses],
    )

    # Every replica's copy of every CAFE variable (sketch, mapping, tables, counters)
    # and of every model and optimizer variable is bit-identical.
    replicas = mu.per_replica_cafe_state(mirrored)
    assert len(replicas) == 2
    mu.assert_states_equal(replicas[0], replicas[1], "replica 0 vs 1")
    for v in mirrored.weights + mirrored.optimizer.variables:
        copies = mu.replica_values(v)
        assert len(copies) == 2, v.name
        np.testing.assert_array_equal(copies[0], copies[1], err_msg=v.name)

    # Same as one device on the same global batches: loss curve, weights, sketch.
    np.testing.assert_allclose(mirrored_losses.losses, single_losses.losses, rtol=1e-5, atol=1e-6)
    expected = mu.cafe_state(single)
    for name, value in replicas[0].items():
        frequency_sums = importance == "frequency" and "_sketch/" in name  # integer sums
        if mu.is_exchange_counter(name):
            assert expected[name] == 0, name  # one device exchanges nothing
        elif _is_structure(name) or frequency_sums:
            np.testing.assert_array_equal(value, expected[name], err_msg=name)
        else:
            np.testing.assert_allclose(value, expected[name], rtol=1e-4, atol=1e-5, err_msg=name)
    mu.assert_states_close(
        mu.weights_state(mirrored), mu.weights_state(single), rtol=1e-4, atol=1e-5, what="weights"
    )
    # Only distinct (key, feature) pairs of each replica cross replicas.
    for layer in (mirrored.embedding, mirrored.c_embedding):
        assert int(layer.exchanged_pairs.numpy()) == exchanged[layer.name] * EPOCHS, layer.name
    for layer in (mirrored.embedding, mirrored.c_embedding):
        assert int(layer.promotions.numpy()) > 0, layer.name
        # The sketch counted the whole global batches: every id of every step.
        total = (
            arrays["u"].size + arrays["v_values"].size if layer.name == "cafe" else arrays["c"].size
        ) * EPOCHS
        assert int(layer.lookups.numpy()) == total
    assert mirrored_losses.losses[-1] < mirrored_losses.losses[0]

    # A checkpoint of the mirrored model restores into a single-device model.
    path = make_checkpoint(mirrored).save(str(tmp_path / "ckpt"))
    restored = mu.make_model(config, c_config=c_config, seed=3)
    restore(make_checkpoint(restored), path).assert_existing_objects_matched()
    mu.assert_states_equal(mu.cafe_state(restored), replicas[0], "restored")
    features = mu.eval_features()
    np.testing.assert_array_equal(restored(features).numpy(), mirrored(features).numpy())

    # A mirrored model exports for serving too (stock-TF graph, same predictions).
    if importance == "gradient":
        export_for_serving(
            mirrored,
            str(tmp_path / "export"),
            {
                "u": tf.TensorSpec([None], tf.int64),
                "c": tf.TensorSpec([None], tf.string),
                "v": tf.RaggedTensorSpec([None, None], tf.int64, ragged_rank=1),
                "x": tf.TensorSpec([None, 1], tf.float32),
            },
        )
        loaded = tf.saved_model.load(str(tmp_path / "export"))  # keep: it owns the variables
        served = loaded.serve(features)["predictions"]
        np.testing.assert_allclose(served.numpy(), mirrored(features).numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_all_gather_with_unequal_and_empty_replica_batches():
    """Each replica's sketch equals one device fed the global batch (in either replica
    order: importance is summed per distinct id before it is rounded), also when one
    or every replica has no ids (TF's all-gather segfaults on the latter
    unless the layer pads it)."""
    run = subprocess.run(
        [sys.executable, str(Path(__file__).resolve())],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"rc={run.returncode}\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert [r["case"] for r in report] == [
        "unequal lengths, order-sensitive sums",
        "replica 1 empty",
        "every replica empty",
        "replica 0 empty",
    ]
    assert [r["lookups"] for r in report] == [9, 11, 11, 12]
    # Id 5 gets 1e8 on replica 0 and six times 1.0 on replica 1. Each replica sums per
    # distinct id in float64 and rounds once: 1e8 + 6 rounds to 100000008 whatever the order,
    # where a float32 sum in input order (1e8 + 1 + 1 ...) would stay at 1e8.
    assert report[0]["score_5"] == float(np.float32(1e8) + np.float32(6.0)) == 100000008.0
    assert not any(r["order_matters"] for r in report)
