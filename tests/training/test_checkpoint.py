"""Checkpoints: exact resume (also after SIGKILL or mid-epoch from a tf_keras backup), and
refusal of mismatching checkpoints.

Run as a script, this file is the child process of the SIGKILL test: it trains with
periodic checkpoints, resuming from the newest one when there is one.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1]  # model_utils.py, sketch_utils.py
ROOT = TESTS.parent
GLOBAL_BATCH = 64
MIGRATE_EVERY = 3


def train(model, arrays, start, stop, callbacks=()):
    """Trains batches [start, stop) of the repeated dataset (migration every 3 steps)."""
    import model_utils as mu

    from cafe_tf.callbacks import CafeMigration

    data = mu.dataset(arrays, GLOBAL_BATCH).repeat().skip(start)
    model.fit(
        data,
        epochs=1,
        steps_per_epoch=stop - start,
        verbose=0,
        callbacks=[*callbacks, CafeMigration(every_n_steps=MIGRATE_EVERY)],
    )


def full_state(model):
    import model_utils as mu

    state = {f"weights::{k}": v for k, v in mu.weights_state(model).items()}
    state.update({f"optimizer::{k}": v for k, v in mu.optimizer_state(model).items()})
    return state


# ---- the child of the SIGKILL test --------------------------------------------------------
def child_main(args):
    import model_utils as mu
    import tensorflow as tf
    import tf_keras

    from cafe_tf.checkpoints import PeriodicCheckpoint, make_checkpoint, restore_latest

    model = mu.make_model(seed=7)
    manager = tf.train.CheckpointManager(make_checkpoint(model), args.dir, max_to_keep=2)
    start = restore_latest(manager)
    print(json.dumps({"resumed_from": start}), flush=True)

    class SlowDownAfterCheckpoint(tf_keras.callbacks.Callback):
        """Once a checkpoint at step >= slow_after exists, says so and slows down,
        so that the parent's SIGKILL lands in the middle of training."""

        def on_train_batch_end(self, batch, logs=None):
            if (
                args.slow_after
                and periodic.saved_steps
                and periodic.saved_steps[-1] >= args.slow_after
            ):
                Path(args.dir, "READY").touch()
                time.sleep(0.1)

    periodic = PeriodicCheckpoint(manager, every_n_steps=args.every)
    # PeriodicCheckpoint is listed first on purpose: it must still save after migration.
    train(
        model,
        mu.make_arrays(args.examples, seed=5),
        start,
        args.steps,
        callbacks=[periodic, SlowDownAfterCheckpoint()],
    )
    np.savez(args.out, **full_state(model))
    print(json.dumps({"done": True, "saved_steps": periodic.saved_steps}), flush=True)


if __name__ == "__main__":
    import argparse

    sys.path[:0] = [str(ROOT), str(TESTS)]
    parser = argparse.ArgumentParser()
    for name, kind in (
        ("--dir", str),
        ("--out", str),
        ("--steps", int),
        ("--every", int),
        ("--slow-after", int),
        ("--examples", int),
    ):
        parser.add_argument(name, type=kind, required=name != "--slow-after", default=0)
    child_main(parser.parse_args())
    sys.exit(0)


# ---- the tests ----------------------------------------------------------------------------
import model_utils as mu  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from cafe_tf.callbacks import CafeMigration  # noqa: E402
from cafe_tf.checkpoints import (  # noqa: E402
    CheckpointCorruptError,
    CheckpointMismatchError,
    ExactBackupAndRestore,
    make_checkpoint,
    mismatches,
    restore,
)
from cafe_tf.layers import (  # noqa: E402
    CafeConfig,
    CafeEmbeddingCollection,
    find_cafe_layers,
)

N_STEPS, M_STEPS = 7, 6  # N is not a multiple of the migration period on purpose


@pytest.fixture(scope="module")
def arrays():
    return mu.make_arrays(GLOBAL_BATCH * 10, seed=5)


@pytest.fixture(scope="module")
def uninterrupted(arrays):
    model = mu.make_model(seed=7)
    train(model, arrays, 0, N_STEPS + M_STEPS)
    return full_state(model), mu.cafe_state(model)


def _assert_same(expected, model):
    state = full_state(model)
    assert sorted(state) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(state[name], expected[name], err_msg=name)


@pytest.mark.parametrize("method", ["checkpoint_manager", "save_weights"])
def test_resume_in_a_fresh_model_equals_uninterrupted_training(
    method, arrays, uninterrupted, tmp_path
):
    expected, expected_cafe = uninterrupted
    first = mu.make_model(seed=7)
    train(first, arrays, 0, N_STEPS)
    promotions_at_save = int(first.embedding.promotions.numpy())
    if method == "checkpoint_manager":
        manager = tf.train.CheckpointManager(make_checkpoint(first), str(tmp_path), 2)
        path = manager.save(checkpoint_number=N_STEPS)
    else:
        path = str(tmp_path / "weights")
        first.save_weights(path)

    fresh = mu.make_model(seed=8)  # other initial weights: everything must come from the file
    assert not np.array_equal(fresh.top.weights[0].numpy(), first.top.weights[0].numpy())
    if method == "checkpoint_manager":
        restore(make_checkpoint(fresh), path).assert_existing_objects_matched()
    else:
        restore(fresh, path).assert_existing_objects_matched()
    assert int(fresh.optimizer.iterations.numpy()) == N_STEPS
    mu.assert_states_equal(mu.cafe_state(fresh), mu.cafe_state(first), "restored")
    train(fresh, arrays, N_STEPS, N_STEPS + M_STEPS)

    _assert_same(expected, fresh)
    mu.assert_states_equal(mu.cafe_state(fresh), expected_cafe, "cafe")
    # The resumed part migrated (so the callback's step count resumed correctly).
    assert int(fresh.embedding.promotions.numpy()) > promotions_at_save > 0


BACKUP_STEPS_PER_EPOCH, BACKUP_EPOCHS = 7, 2


def fit_with_backup(model, arrays, backup_dir, save_freq, *callbacks):
    """2 epochs of 7 steps over the repeated data (10 batches), backed up, resuming from
    the backup."""
    backup = ExactBackupAndRestore(str(backup_dir), save_freq=save_freq)
    data = backup.skip_trained(mu.dataset(arrays, GLOBAL_BATCH).repeat(), BACKUP_STEPS_PER_EPOCH)
    # The backup is listed first on purpose: it must still back up after migration.
    model.fit(
        data,
        epochs=BACKUP_EPOCHS,
        steps_per_epoch=BACKUP_STEPS_PER_EPOCH,
        verbose=0,
        callbacks=[backup, CafeMigration(every_n_steps=MIGRATE_EVERY), *callbacks],
    )


@pytest.fixture(scope="module")
def uninterrupted_epochs(arrays, tmp_path_factory):
    model = mu.make_model(seed=7)
    backup_dir = tmp_path_factory.mktemp("backup")
    fit_with_backup(model, arrays, backup_dir, 3)
    assert not (backup_dir / "chief").exists()  # deleted when fit finishes
    return full_state(model), mu.cafe_state(model)


@pytest.mark.parametrize("save_freq, position", [(3, 12), ("epoch", 7)])
def test_backup_resumes_mid_epoch_on_the_next_batch(
    save_freq, position, arrays, uninterrupted_epochs, tmp_path
):
    """A fit that dies at step 13 resumes, in a fresh model, on the batch after its last
    backup (step 12: epoch 1's batch 4, after the step's migration; or the end of epoch 0)
    and ends bit-identical to an uninterrupted fit."""

    class Crash(tf_keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == 13:
                raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        fit_with_backup(mu.make_model(seed=7), arrays, tmp_path, save_freq, Crash())
    backup = ExactBackupAndRestore(str(tmp_path), save_freq=save_freq)
    assert backup.trained_batches(BACKUP_STEPS_PER_EPOCH) == position

    resumed = mu.make_model(seed=8)  # other initial weights: everything must come from the backup
    fit_with_backup(resumed, arrays, tmp_path, save_freq)
    expected, expected_cafe = uninterrupted_epochs
    _assert_same(expected, resumed)
    mu.assert_states_equal(mu.cafe_state(resumed), expected_cafe, "cafe")


def test_backup_options_and_positions_are_checked(tmp_path):
    for bad in (0, -2, 1.5, True, "batch"):
        with pytest.raises(ValueError, match="save_freq must be"):
            ExactBackupAndRestore(str(tmp_path), save_freq=bad)
    backup = ExactBackupAndRestore(str(tmp_path), save_freq=2)
    assert backup.trained_batches(4) == 0  # no backup yet: start afresh
    for bad in (0, 2.0, None):
        with pytest.raises(ValueError, match="steps_per_epoch must be"):
            backup.trained_batches(bad)
    # A backup of epoch 1's batch 4 (of 6): resuming with 3 steps per epoch is refused.
    state = tf.train.Checkpoint(
        ckpt_saved_epoch=tf.Variable(1, dtype=tf.int64),
        ckpt_saved_batch=tf.Variable(4, dtype=tf.int64),
    )
    tf.train.CheckpointManager(state, str(tmp_path / "chief"), 1).save()
    assert backup.trained_batches(6) == 6 + 5
    with pytest.raises(ValueError, match="written at batch 4 .* steps_per_epoch is 3"):
        backup.trained_batches(3)


def test_checkpoint_holds_sketch_tables_bookkeeping_and_slots(tmp_path):
    model = mu.make_model()
    path = make_checkpoint(model).save(str(tmp_path / "ckpt"))
    keys = [name for name, _ in tf.train.list_variables(path)]
    for layer in ("embedding", "c_embedding"):
        for variable in (
            "hot_table",
            "hashed_tables",
            "slots",
            "scores",
            "mass",
            "batches",
            "promotions",
            "demotions",
        ):
            assert f"model/{layer}/{variable}/.ATTRIBUTES/VARIABLE_VALUE" in keys, variable
    assert "cafe_layout/.ATTRIBUTES/py_state" in keys
    # Adam's two slots per trainable variable, and its iteration count.
    slots = [k for k in keys if k.startswith("optimizer/_variables/")]
    assert len(slots) == 2 * len(model.trainable_variables)
    assert "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE" in keys


def _layer_checkpoint(features):
    layer = CafeEmbeddingCollection(
        features, CafeConfig(embedding_dim=4, compression_ratio=20), name="cafe"
    )
    layer.build(None)
    return layer, make_checkpoint(layer, optimizer=None)


def test_checkpoint_of_other_sizes_is_refused_naming_the_mismatch(tmp_path):
    saved = mu.make_model(seed=1)
    path = make_checkpoint(saved).save(str(tmp_path / "ckpt"))
    saved.save_weights(str(tmp_path / "weights"))

    other = mu.make_model(mu.cafe_config(compression_ratio=200), seed=2)
    before = mu.weights_state(other)
    with pytest.raises(CheckpointMismatchError) as error:
        restore(make_checkpoint(other), path)
    message = str(error.value)
    layout = next(layer for layer in find_cafe_layers(saved) if layer.name == "cafe").layout
    hashed_rows = sum(layout.hashed_rows)
    assert f"CAFE layer 'cafe': hot_rows is {layout.hot_rows} in the checkpoint but" in message
    assert (
        f"CAFE layer 'cafe', hashed_tables: shape [{hashed_rows}, 8] in the checkpoint but"
        in message
    )
    assert (
        f"CAFE layer 'cafe', slots: shape [{layout.num_buckets}, {layout.slots_per_bucket}] in "
        "the checkpoint but" in message
    )
    assert "cafe_c" not in message  # the other layer matches
    assert "compression_ratio" in message  # says what to do
    mu.assert_states_equal(mu.weights_state(other), before, "nothing restored")

    # model.save_weights checkpoints: the layers' own layout records and the shapes.
    with pytest.raises(
        CheckpointMismatchError,
        match=rf"CAFE layer 'cafe', hot_table: shape \[{layout.hot_rows}, 8\] "
        "in the checkpoint but",
    ):
        restore(other, str(tmp_path / "weights"))
    mu.assert_states_equal(mu.weights_state(other), before, "nothing restored")


def test_same_shapes_but_other_row_split_is_refused(tmp_path):
    """Vocabulary sizes that move hashed rows between features keep every shape, so
    TF would restore silently; the layout record refuses it."""
    a, checkpoint = _layer_checkpoint({"x": 150_000, "y": 50_000})
    b, other_checkpoint = _layer_checkpoint({"x": 100_000, "y": 100_000})
    assert [v.shape for v in a.weights] == [v.shape for v in b.weights]
    assert a.layout.hashed_rows != b.layout.hashed_rows
    path = checkpoint.save(str(tmp_path / "ckpt"))
    problems = mismatches(other_checkpoint, path)
    assert any(p.startswith("CAFE layer 'cafe': hashed_rows is") for p in problems), problems
    assert any(p.startswith("CAFE layer 'cafe': features is") for p in problems), problems
    with pytest.raises(CheckpointMismatchError, match="hashed_rows"):
        restore(other_checkpoint, path)
    # Plain tf.train.Checkpoint.restore is refused too (by the layout record itself).
    with pytest.raises(CheckpointMismatchError, match="hashed_rows"):
        other_checkpoint.restore(path)
    # The matching layout restores.
    _, same_checkpoint = _layer_checkpoint({"x": 150_000, "y": 50_000})
    assert mismatches(same_checkpoint, path) == []


def test_shared_and_per_feature_hashed_tables_refuse_each_others_checkpoints(tmp_path):
    """The layout record says whether the hashed table is shared: its rows mean
    something else than per-feature tables' rows, even where the shapes agree."""

    def layer(share):
        config = CafeConfig(embedding_dim=4, budget_bytes=4000, share_hashed_tables=share)
        cafe = CafeEmbeddingCollection({"x": 1000}, config, name="cafe")
        cafe.build(None)
        return tf.train.Checkpoint(layer=cafe)

    path = layer(True).save(str(tmp_path / "ckpt"))
    other = layer(False)  # one feature: the same shapes
    assert [v.shape for v in other.layer.weights] == [v.shape for v in layer(True).layer.weights]
    with pytest.raises(
        CheckpointMismatchError,
        match=r"holds shared hashed tables, this model per-feature ones: build the layer "
        r"with CafeConfig\(share_hashed_tables=True\)",
    ):
        restore(other, path)
    assert mismatches(layer(True), path) == []
    # A checkpoint of per-feature tables (whose record has no such field, as before
    # tables could be shared) names the setting that restores it.
    path = layer(False).save(str(tmp_path / "per_feature"))
    assert any("share_hashed_tables=False" in p for p in mismatches(layer(True), path))
    assert mismatches(layer(False), path) == []


def test_state_the_checkpoint_lacks_is_named(tmp_path):
    """A variable of this model's CAFE layer that the checkpoint does not hold would
    keep its fresh value: refused (here the medium tables of multi-level hashing)."""
    layer = CafeEmbeddingCollection(
        {"x": 1000}, CafeConfig(embedding_dim=4, budget_bytes=4000), name="cafe"
    )
    layer.build(None)
    path = tf.train.Checkpoint(layer=layer).save(str(tmp_path / "ckpt"))
    other = CafeEmbeddingCollection(
        {"x": 1000},
        CafeConfig(embedding_dim=4, budget_bytes=4000, multi_level=True, medium_share=0.3),
        name="cafe",
    )
    other.build(None)
    problems = mismatches(tf.train.Checkpoint(layer=other), path)
    assert "CAFE layer 'cafe', medium_tables: not in the checkpoint" in problems, problems
    with pytest.raises(CheckpointMismatchError, match="medium_tables: not in the checkpoint"):
        restore(tf.train.Checkpoint(layer=other), path)


def test_layer_records_its_layout_in_every_checkpoint(tmp_path):
    """save_weights / load_weights (and any tf.train.Checkpoint of the layer) carry the
    layer's own layout record: another row split of the same shapes is refused."""

    def wrap(layer):
        inputs = {name: tf_keras.Input([1], dtype=tf.int64, name=name) for name in ("x", "y")}
        return tf_keras.Model(inputs, layer(inputs))

    a, _ = _layer_checkpoint({"x": 150_000, "y": 50_000})
    b, _ = _layer_checkpoint({"x": 100_000, "y": 100_000})
    wrap(a).save_weights(str(tmp_path / "weights"))
    with pytest.raises(CheckpointMismatchError, match="hashed_rows is"):
        wrap(b).load_weights(str(tmp_path / "weights"))
    problems = mismatches(wrap(b), str(tmp_path / "weights"))
    assert any(p.startswith("CAFE layer 'cafe': hashed_rows is") for p in problems), problems
    c, _ = _layer_checkpoint({"x": 150_000, "y": 50_000})
    wrap(c).load_weights(str(tmp_path / "weights"))
    for x, y in zip(a.weights, c.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def _flip_a_byte_of_an_optimizer_slot(path):
    """Flips one byte inside the stored value of one of Adam's slot variables."""
    data = Path(f"{path}.data-00000-of-00001")
    contents = bytearray(data.read_bytes())
    reader = tf.train.load_checkpoint(path)
    slots = [k for k in reader.get_variable_to_shape_map() if k.startswith("optimizer/_var")]
    for key in sorted(slots):
        value = reader.get_tensor(key).tobytes()
        if contents.count(value) == 1:  # found once in the file (not all zeros, say)
            contents[contents.find(value) + len(value) // 2] ^= 0xFF
            data.write_bytes(bytes(contents))
            return
    raise AssertionError("no optimizer slot to corrupt")


def _truncate(path, suffix):
    file = Path(f"{path}{suffix}")
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


CORRUPTIONS = {
    # A fresh model's optimizer has no slots yet, so TF would restore everything else and
    # read this value only at the first training step.
    "optimizer_slot_bytes": (
        _flip_a_byte_of_an_optimizer_slot,
        r"the data file .*ckpt-1\.data-00000-of-00001 is truncated or "
        r"corrupted: reading 'optimizer/_variables/\d+/.*' failed "
        r"\(.*Checksum",
    ),
    "truncated_data": (
        lambda path: _truncate(path, ".data-00000-of-00001"),
        r"the data file .*ckpt-1\.data-00000-of-00001 is truncated or corrupted",
    ),
    "truncated_index": (
        lambda path: _truncate(path, ".index"),
        r"its index file .*ckpt-1\.index is unreadable",
    ),
    "missing_data": (
        lambda path: os.remove(f"{path}.data-00000-of-00001"),
        r"its data file .*ckpt-1\.data-\*-of-\* is missing",
    ),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_checkpoint_is_refused_naming_the_file_and_restores_nothing(
    corruption, arrays, tmp_path
):
    saved = mu.make_model(seed=7)
    train(saved, arrays, 0, 3)
    path = make_checkpoint(saved).save(str(tmp_path / "ckpt"))
    corrupt, message = CORRUPTIONS[corruption]
    corrupt(path)

    tf_keras.utils.set_random_seed(8)
    fresh = mu.CafeRanker()
    fresh.compile(optimizer=tf_keras.optimizers.Adam(0.05))
    fresh(mu.eval_features(4))  # the layers' variables, but no optimizer slots yet
    assert not fresh.optimizer.variables[1:]  # so TF would defer their restore
    before = mu.weights_state(fresh)
    with pytest.raises(CheckpointCorruptError, match=message + ".*nothing was restored"):
        restore(make_checkpoint(fresh), path)
    with pytest.raises(CheckpointCorruptError, match=message):
        mismatches(make_checkpoint(fresh), path)
    mu.assert_states_equal(mu.weights_state(fresh), before, "nothing restored")
    assert not fresh.optimizer.variables[1:]


def test_corrupt_save_weights_checkpoint_is_refused(arrays, tmp_path):
    saved = mu.make_model(seed=7)
    train(saved, arrays, 0, 2)
    path = str(tmp_path / "weights")
    saved.save_weights(path)
    _truncate(path, ".data-00000-of-00001")
    fresh = mu.make_model(seed=8)
    before = mu.weights_state(fresh)
    with pytest.raises(CheckpointCorruptError, match="weights.data-00000-of-00001 is truncated"):
        restore(fresh, path)
    mu.assert_states_equal(mu.weights_state(fresh), before, "nothing restored")


@pytest.mark.slow
def test_sigkill_mid_training_resumes_from_last_checkpoint_with_nothing_lost(tmp_path):
    steps, every, examples = 24, 4, GLOBAL_BATCH * 10
    ckpt_dir, out = tmp_path / "ckpt", tmp_path / "final.npz"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--dir",
        str(ckpt_dir),
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--every",
        str(every),
        "--examples",
        str(examples),
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1")
    ckpt_dir.mkdir()
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(
        command + ["--slow-after", "8"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 90
        while not (ckpt_dir / "READY").exists():
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the child never reached its checkpoint"
            time.sleep(0.05)
        time.sleep(0.25)  # mid-way between checkpoints
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        log.close()
    assert first.returncode == -signal.SIGKILL
    assert not out.exists(), "the child finished before it was killed"
    killed_at = tf.train.latest_checkpoint(str(ckpt_dir))
    assert killed_at is not None and 8 <= int(killed_at.rsplit("-", 1)[1]) < steps

    second = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    lines = [json.loads(line) for line in second.stdout.splitlines() if line.startswith("{")]
    assert lines[0]["resumed_from"] == int(killed_at.rsplit("-", 1)[1])
    assert lines[-1]["done"] and lines[-1]["saved_steps"][-1] == steps

    reference = mu.make_model(seed=7)
    train(reference, mu.make_arrays(examples, seed=5), 0, steps)
    resumed = dict(np.load(out))
    expected = full_state(reference)
    assert sorted(resumed) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(resumed[name], expected[name], err_msg=name)


@pytest.mark.parametrize("old_version", [2, 3])
def test_checkpoint_of_an_older_sketch_layout_is_refused_naming_the_versions(
    tmp_path, monkeypatch, old_version
):
    """Checkpoints of the former layouts (2: 16-byte slots; 3: 12-byte slots in one
    bucket of four per hot row) cannot be read into today's layer, naming both versions."""
    from cafe_tf.layers import layout_record

    current_version = layout_record.SKETCH_STATE_VERSION
    assert current_version == 4
    with monkeypatch.context() as patch:
        patch.setattr(layout_record, "SKETCH_STATE_VERSION", old_version)
        old = CafeEmbeddingCollection(
            {"x": 1000, "y": 500},
            CafeConfig(
                embedding_dim=4,
                compression_ratio=20,
                sketch_bytes_per_hot_row=None,
                slots_per_bucket=4,
            ),
            name="cafe",
        )
        old.build(None)
        path = make_checkpoint(old, optimizer=None).save(str(tmp_path / "ckpt"))
    current, checkpoint = _layer_checkpoint({"x": 1000, "y": 500})
    before = [v.numpy() for v in current.weights]
    message = (
        f"sketch_state_version is {old_version} in the checkpoint but {current_version} in "
        f"this model: the checkpoint holds an older sketch layout \\(version {old_version}; "
        f"this cafe_tf reads version {current_version}"
    )
    assert any(
        f"sketch_state_version is {old_version} in the checkpoint but {current_version}" in p
        for p in mismatches(checkpoint, path)
    )
    with pytest.raises(CheckpointMismatchError, match=message):
        restore(checkpoint, path)
    with pytest.raises(CheckpointMismatchError, match="older sketch layout"):
        checkpoint.restore(path)
    for v, value in zip(current.weights, before):
        np.testing.assert_array_equal(v.numpy(), value, err_msg=v.name)
