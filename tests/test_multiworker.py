"""MultiWorkerMirroredStrategy: 2 worker processes on localhost train one CAFE model.

The test starts both workers itself (this file, run as a script, is the worker),
with a TF_CONFIG on free 127.0.0.1 ports, waits with a timeout and kills them on
failure. Each worker saves its final state; the test checks that the workers'
sketches, hot tables, mappings and weights are bit-identical, that every worker's
sketch saw every global batch once (not only its own shard), that training
learned something, and that it matches one device trained on the same global
batches from the same initial weights.
"""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NUM_WORKERS = 2
GLOBAL_BATCH = 64
NUM_EXAMPLES = 64 * 12 + 20   # 13 global batches, the last one partial (20 examples)
EPOCHS = 2
TIMEOUT_S = 120  # the workers are killed after this
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


def run_workers(out_dir, timeout_s=TIMEOUT_S, script=__file__, extra_args=()):
    """Starts NUM_WORKERS worker processes; returns ([(returncode, output)], timed_out).

    Kills every worker still running when one fails or the timeout passes.
    """
    ports = free_ports(NUM_WORKERS)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs, logs = [], []
    env_base = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env_base.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2",
                    PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]))
    try:
        for index in range(NUM_WORKERS):
            env = dict(env_base, TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}))
            log = open(Path(out_dir) / f"worker{index}.log", "w+")
            logs.append(log)
            procs.append(subprocess.Popen(
                [sys.executable, str(script), "--out", str(out_dir), *extra_args],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(out_dir)))
        deadline = time.monotonic() + timeout_s
        timed_out = True
        while time.monotonic() < deadline:
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes) or any(c not in (None, 0) for c in codes):
                timed_out = False
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait()
    results = []
    for p, log in zip(procs, logs):
        log.seek(0)
        results.append((p.returncode, log.read()))
        log.close()
    return results, timed_out


# ---- the worker -------------------------------------------------------------------------
def worker_main(out_dir):
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    import model_utils as mu
    from cafe_tf.callbacks import CafeMigration

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    arrays = mu.make_arrays(NUM_EXAMPLES, seed=3)
    with strategy.scope():
        model = mu.make_model()
    initial = model.get_weights()
    steps = -(-NUM_EXAMPLES // GLOBAL_BATCH)
    initial_loss = float(strategy.reduce(
        "SUM", strategy.run(lambda b: model.compute_loss(b), args=(next(iter(
            strategy.experimental_distribute_dataset(mu.dataset(arrays, GLOBAL_BATCH)))),)),
        axis=None))
    dist = strategy.experimental_distribute_dataset(mu.dataset(arrays, GLOBAL_BATCH).repeat())
    losses = mu.BatchLosses()
    model.fit(dist, epochs=EPOCHS, steps_per_epoch=steps, verbose=0,
              callbacks=[CafeMigration(every_n_steps=2), losses])
    state = {f"cafe::{k}": v for k, v in mu.cafe_state(model).items()}
    state.update({f"weights::{k}": v for k, v in mu.weights_state(model).items()})
    state.update({f"optimizer::{k}": v for k, v in mu.optimizer_state(model).items()})
    np.savez(Path(out_dir) / f"state{task}.npz", **state)
    np.savez(Path(out_dir) / f"initial{task}.npz", *initial)
    total_ids = {"cafe": int(arrays["u"].size + arrays["v_values"].size) * EPOCHS,
                 "cafe_c": int(arrays["c"].size) * EPOCHS}
    (Path(out_dir) / f"summary{task}.json").write_text(json.dumps({
        "losses": losses.losses, "initial_loss": initial_loss, "steps": steps * EPOCHS,
        "total_ids": total_ids, "num_replicas": strategy.num_replicas_in_sync}))
    print("worker", task, "done", flush=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    worker_main(parser.parse_args().out)
    sys.exit(0)


# ---- the test ---------------------------------------------------------------------------
import pytest  # noqa: E402


@pytest.mark.slow
def test_two_workers_on_localhost_train_identical_cafe_state(tmp_path):
    start = time.monotonic()
    results, timed_out = run_workers(tmp_path)
    elapsed = time.monotonic() - start
    assert not timed_out, (f"workers killed after {TIMEOUT_S}s; logs:\n"
                           + "\n".join(out[-2000:] for _, out in results))
    for index, (code, output) in enumerate(results):
        assert code == 0, (f"worker {index} failed (rc={code}) after {elapsed:.0f}s:\n"
                           f"{output[-4000:]}")
    states = [dict(np.load(tmp_path / f"state{i}.npz")) for i in range(NUM_WORKERS)]
    summaries = [json.loads((tmp_path / f"summary{i}.json").read_text())
                 for i in range(NUM_WORKERS)]
    assert summaries[0]["num_replicas"] == NUM_WORKERS
    assert sorted(states[0]) == sorted(states[1])
    # Sketch, hot-row mapping, tables, counters, every weight and optimizer slot:
    # bit-identical on both workers.
    for name in states[0]:
        np.testing.assert_array_equal(states[0][name], states[1][name], err_msg=name)
    np.testing.assert_array_equal(summaries[0]["losses"], summaries[1]["losses"])

    state = states[0]
    for layer in ("cafe", "cafe_c"):
        def value(suffix):
            (key,) = [k for k in state if k.startswith(f"cafe::{layer}/") and
                      k.endswith(f"/{suffix}:0")]
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
    import model_utils as mu
    from cafe_tf.callbacks import CafeMigration

    initial = np.load(tmp_path / "initial0.npz")
    single = mu.make_model()
    single.set_weights([initial[f"arr_{i}"] for i in range(len(initial.files))])
    single_losses = mu.BatchLosses()
    arrays = mu.make_arrays(NUM_EXAMPLES, seed=3)
    steps = -(-NUM_EXAMPLES // GLOBAL_BATCH)
    single.fit(mu.dataset(arrays, GLOBAL_BATCH).repeat(), epochs=EPOCHS, steps_per_epoch=steps,
               verbose=0, callbacks=[CafeMigration(every_n_steps=2), single_losses])
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
        np.testing.assert_allclose(state[f"weights::{name}"], value, rtol=1e-4, atol=1e-5,
                                   err_msg=name)
