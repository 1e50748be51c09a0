"""MultiWorkerMirroredStrategy: 2 worker processes on localhost train one CAFE model.

The test starts both workers itself (this file, run as a script, is the worker),
with a TF_CONFIG on free 127.0.0.1 ports, waits with a timeout and kills them on
failure. Each worker saves its final state; the test checks that the workers'
sketches, hot tables, mappings and weights are bit-identical, that every worker's
sketch saw every global batch once (not only its own shard), that training
learned something, and that it matches one device trained on the same global
batches from the same initial weights.

A lost worker costs nothing: one worker is killed with SIGKILL mid-epoch after a
backup (`ExactBackupAndRestore`), its peer is killed too, both are started again
with the same TF_CONFIG and backup directory, and the run ends bit-identical to the
uninterrupted one.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1]  # model_utils.py, sketch_utils.py
ROOT = TESTS.parent
NUM_WORKERS = 2
GLOBAL_BATCH = 64
NUM_EXAMPLES = 64 * 12 + 20  # 13 global batches, the last one partial (20 examples)
STEPS_PER_EPOCH = -(-NUM_EXAMPLES // GLOBAL_BATCH)
EPOCHS = 2
MIGRATE_EVERY = 3
# Backups every 4 steps: the one of step 20 (or 24) is mid-epoch (13 steps per epoch), and
# the resumed epoch starts at a batch that is not a multiple of MIGRATE_EVERY.
BACKUP_EVERY, KILL_AFTER = 4, 20
TIMEOUT_S = 240  # the workers are killed after this (each start of the cluster)
# Exact against one device (see test_distribution.py): slots (fingerprints, hot-row
# mapping), counters.
STRUCTURE = ("slots", "batches", "promotions", "demotions", "lookups", "hot_lookups")


def free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Cluster:
    """NUM_WORKERS processes of `script` (workers), one per 127.0.0.1 port; a context manager.

    Each worker gets TF_CONFIG for `ports` and writes its output to out_dir/worker<i>.log.
    On exit every worker still running is killed; `results` then holds each worker's
    (returncode, output).
    """

    def __init__(self, out_dir, ports, script=__file__, extra_args=()):
        self.out_dir, self.ports, self.script, self.extra_args = out_dir, ports, script, extra_args
        self.procs, self.logs, self.results = [], [], None

    def __enter__(self):
        cluster = {"worker": [f"127.0.0.1:{p}" for p in self.ports]}
        env_base = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
        env_base.update(
            TF_USE_LEGACY_KERAS="1",
            TF_CPP_MIN_LOG_LEVEL="2",
            PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS)]),
        )
        try:
            for index in range(len(self.ports)):
                env = dict(
                    env_base,
                    TF_CONFIG=json.dumps(
                        {"cluster": cluster, "task": {"type": "worker", "index": index}}
                    ),
                )
                log = open(Path(self.out_dir) / f"worker{index}.log", "w+")
                self.logs.append(log)
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            str(self.script),
                            "--out",
                            str(self.out_dir),
                            *self.extra_args,
                        ],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=str(self.out_dir),
                    )
                )
        except BaseException:
            self.__exit__()
            raise
        return self

    def wait(self, timeout_s, until=lambda: False) -> bool:
        """Waits until every worker has exited, one has failed or `until()` holds.

        Returns True if `timeout_s` passed first.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            codes = [p.poll() for p in self.procs]
            if (
                all(c is not None for c in codes)
                or any(c not in (None, 0) for c in codes)
                or until()
            ):
                return False
            time.sleep(0.1)
        return True

    def kill(self, index) -> int:
        """SIGKILLs worker `index` (if running); returns its exit status."""
        proc = self.procs[index]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        return proc.wait(timeout=30)

    def output(self) -> str:
        return "\n".join(
            f"-- worker {i}:\n{out[-2000:]}" for i, (_, out) in enumerate(self.results)
        )

    def __exit__(self, *exc):
        for index in range(len(self.procs)):
            self.kill(index)
        self.results = []
        for proc, log in zip(self.procs, self.logs):
            log.seek(0)
            self.results.append((proc.returncode, log.read()))
            log.close()


def run_workers(out_dir, timeout_s=TIMEOUT_S, script=__file__, extra_args=()):
    """Starts NUM_WORKERS worker processes; returns ([(returncode, output)], timed_out).

    Kills every worker still running when one fails or the timeout passes.
    """
    with Cluster(out_dir, free_ports(NUM_WORKERS), script, extra_args) as cluster:
        timed_out = cluster.wait(timeout_s)
    return cluster.results, timed_out


# ---- the worker -------------------------------------------------------------------------
def worker_main(args):
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import model_utils as mu
    import tensorflow as tf
    import tf_keras

    from cafe_tf.callbacks import CafeMigration
    from cafe_tf.checkpoints import ExactBackupAndRestore

    out_dir = Path(args.out)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    arrays = mu.make_arrays(NUM_EXAMPLES, seed=3)
    with strategy.scope():
        model = mu.make_model()
    initial = model.get_weights()
    initial_loss = float(
        strategy.reduce(
            "SUM",
            strategy.run(
                lambda b: model.compute_loss(b),
                args=(
                    next(
                        iter(
                            strategy.experimental_distribute_dataset(
                                mu.dataset(arrays, GLOBAL_BATCH)
                            )
                        )
                    ),
                ),
            ),
            axis=None,
        )
    )
    losses = mu.BatchLosses()
    # The backup is listed first on purpose: it must still back up after migration.
    backup = ExactBackupAndRestore(args.backup, save_freq=BACKUP_EVERY)
    callbacks = [backup, CafeMigration(every_n_steps=MIGRATE_EVERY), losses]
    if args.slow_after:

        class SlowDown(tf_keras.callbacks.Callback):
            """From step `slow_after` on, both workers slow down, so that the test's
            SIGKILL, sent once it sees that step's backup, lands mid-epoch."""

            def on_train_batch_begin(self, batch, logs=None):
                if int(self.model.optimizer.iterations.numpy()) >= args.slow_after:
                    time.sleep(0.5)

        callbacks.append(SlowDown())
    resumed_from = backup.trained_batches(STEPS_PER_EPOCH)
    print(json.dumps({"resumed_from": resumed_from}), flush=True)
    data = mu.dataset(arrays, GLOBAL_BATCH).repeat().skip(resumed_from)
    model.fit(
        strategy.experimental_distribute_dataset(data),
        epochs=EPOCHS,
        steps_per_epoch=STEPS_PER_EPOCH,
        verbose=0,
        callbacks=callbacks,
    )
    state = {f"cafe::{k}": v for k, v in mu.cafe_state(model).items()}
    state.update({f"weights::{k}": v for k, v in mu.weights_state(model).items()})
    state.update({f"optimizer::{k}": v for k, v in mu.optimizer_state(model).items()})
    np.savez(out_dir / f"state{task}.npz", **state)
    np.savez(out_dir / f"initial{task}.npz", *initial)
    total_ids = {
        "cafe": int(arrays["u"].size + arrays["v_values"].size) * EPOCHS,
        "cafe_c": int(arrays["c"].size) * EPOCHS,
    }
    (out_dir / f"summary{task}.json").write_text(
        json.dumps(
            {
                "losses": losses.losses,
                "initial_loss": initial_loss,
                "steps": STEPS_PER_EPOCH * EPOCHS,
                "resumed_from": resumed_from,
                "total_ids": total_ids,
                "num_replicas": strategy.num_replicas_in_sync,
            }
        )
    )
    print("worker", task, "done", flush=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--backup", required=True)
    parser.add_argument("--slow-after", type=int, default=0)
    worker_main(parser.parse_args())
    sys.exit(0)


# ---- the tests --------------------------------------------------------------------------
import model_utils as mu  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


def read_run(out_dir):
    """([state per worker], [summary per worker]) a finished run saved in out_dir."""
    return (
        [dict(np.load(Path(out_dir) / f"state{i}.npz")) for i in range(NUM_WORKERS)],
        [json.loads((Path(out_dir) / f"summary{i}.json").read_text()) for i in range(NUM_WORKERS)],
    )


def assert_finished(results, timed_out, what):
    assert not timed_out, f"{what}: workers killed after {TIMEOUT_S}s; logs:\n" + "\n".join(
        out[-2000:] for _, out in results
    )
    for index, (code, output) in enumerate(results):
        assert code == 0, f"{what}: worker {index} failed (rc={code}):\n{output[-4000:]}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A finished 2-worker run (with backups every BACKUP_EVERY steps): its output dir."""
    out_dir = tmp_path_factory.mktemp("uninterrupted")
    results, timed_out = run_workers(out_dir, extra_args=["--backup", str(out_dir / "backup")])
    assert_finished(results, timed_out, "uninterrupted run")
    return out_dir


@pytest.mark.slow
def test_two_workers_on_localhost_train_identical_cafe_state(uninterrupted):
    states, summaries = read_run(uninterrupted)
    assert summaries[0]["num_replicas"] == NUM_WORKERS
    # Training finished: the backup is gone, so a rerun would start afresh.
    assert not (uninterrupted / "backup" / "chief").exists()
    assert sorted(states[0]) == sorted(states[1])
    # Sketch, hot-row mapping, tables, counters, every weight and optimizer slot:
    # bit-identical on both workers.
    for name in states[0]:
        np.testing.assert_array_equal(states[0][name], states[1][name], err_msg=name)
    np.testing.assert_array_equal(summaries[0]["losses"], summaries[1]["losses"])

    state = states[0]
    for layer in ("cafe", "cafe_c"):

        def value(suffix):
            (key,) = [
                k
                for k in state
                if k.startswith(f"cafe::{layer}/") and k.endswith(f"/{suffix}:0")  # noqa: B023
            ]
            return state[key]

        # Each worker's sketch saw every global batch once, not only its own shard.
        assert int(value("lookups")) == summaries[0]["total_ids"][layer]
        assert int(value("promotions")) > 0
    # Training learned something (the planted ids decide most labels).
    losses = summaries[0]["losses"]
    assert len(losses) == summaries[0]["steps"]
    assert np.mean(losses[-4:]) < 0.8 * summaries[0]["initial_loss"], losses

    # The same as one device trained on the same global batches from the same weights:
    # loss curve, sketch structure exactly; scores, tables and weights up to the float
    # order of the cross-worker gradient sum.
    from cafe_tf.callbacks import CafeMigration

    initial = np.load(uninterrupted / "initial0.npz")
    single = mu.make_model()
    single.set_weights([initial[f"arr_{i}"] for i in range(len(initial.files))])
    single_losses = mu.BatchLosses()
    arrays = mu.make_arrays(NUM_EXAMPLES, seed=3)
    single.fit(
        mu.dataset(arrays, GLOBAL_BATCH).repeat(),
        epochs=EPOCHS,
        steps_per_epoch=STEPS_PER_EPOCH,
        verbose=0,
        callbacks=[CafeMigration(every_n_steps=MIGRATE_EVERY), single_losses],
    )
    np.testing.assert_allclose(losses, single_losses.losses, rtol=1e-5, atol=1e-6)
    for name, value in mu.cafe_state(single).items():
        worker_value = state[f"cafe::{name}"]
        if mu.is_exchange_counter(name):
            assert worker_value > 0 == value, name  # only the workers exchange
        elif name.split("/")[-1].split(":")[0] in STRUCTURE:
            np.testing.assert_array_equal(worker_value, value, err_msg=name)
        else:
            np.testing.assert_allclose(worker_value, value, rtol=1e-4, atol=1e-5, err_msg=name)
    for name, value in mu.weights_state(single).items():
        np.testing.assert_allclose(
            state[f"weights::{name}"], value, rtol=1e-4, atol=1e-5, err_msg=name
        )


@pytest.mark.slow
@pytest.mark.timeout(900)  # above its two clusters' own limits, whose failure shows their output
def test_worker_killed_mid_epoch_resumes_from_backup_bit_identical(uninterrupted, tmp_path):
    """SIGKILL one worker mid-epoch after a backup, restart the cluster: nothing is lost."""
    from cafe_tf.checkpoints import ExactBackupAndRestore

    backup_dir = tmp_path / "backup"
    backup = ExactBackupAndRestore(str(backup_dir), save_freq=BACKUP_EVERY)

    def backed_up_to_kill_point():
        try:
            return backup.trained_batches(STEPS_PER_EPOCH) >= KILL_AFTER
        except (tf.errors.NotFoundError, ValueError):  # a backup being replaced
            return False

    ports = free_ports(NUM_WORKERS)
    killed_dir, resumed_dir = tmp_path / "killed", tmp_path / "resumed"
    killed_dir.mkdir()
    resumed_dir.mkdir()
    args = ["--backup", str(backup_dir)]
    with Cluster(killed_dir, ports, extra_args=args + ["--slow-after", str(KILL_AFTER)]) as c:
        timed_out = c.wait(TIMEOUT_S, until=backed_up_to_kill_point)
        # One worker is lost...
        lost = c.kill(1)
        # ...so its peer cannot go on: a cluster manager stops the whole job.
        peer_running = c.procs[0].poll() is None
    assert not timed_out, "no backup of the kill point in time:\n" + c.output()
    assert lost == -signal.SIGKILL, c.output()
    assert peer_running, c.output()
    assert not list(killed_dir.glob("state*.npz")), "a worker finished before the kill"
    position = backup.trained_batches(STEPS_PER_EPOCH)
    # Mid-epoch, before the end.
    assert position % STEPS_PER_EPOCH and KILL_AFTER <= position < EPOCHS * STEPS_PER_EPOCH

    # The cluster manager starts both workers again with the same TF_CONFIG.
    with Cluster(resumed_dir, ports, extra_args=args) as c:
        timed_out = c.wait(TIMEOUT_S)
    assert_finished(c.results, timed_out, "resumed run")
    states, summaries = read_run(resumed_dir)
    assert [s["resumed_from"] for s in summaries] == [position] * NUM_WORKERS
    expected, _ = read_run(uninterrupted)
    # Every weight, optimizer slot and iteration count, and the whole sketch state (keys,
    # scores, hot-row mapping, tables, counters) bit-identical on both workers.
    for state in states:
        mu.assert_states_equal(state, expected[0], what="resumed vs uninterrupted")
