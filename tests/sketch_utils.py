"""Shared helpers for the sketch tests: random skewed batches and exact state comparison."""

import numpy as np
import tensorflow as tf

from cafe_tf import hashing
from cafe_tf.sketch import HotSketch


def zipf_batch(rng, n, distinct, alpha=1.1, importance="random", num_features=1):
    """n ids drawn from Zipf(alpha) over `distinct` ids, spread over int64."""
    ranks = np.minimum(rng.zipf(alpha, size=n), distinct) - 1
    # Map ranks to scattered signed int64 ids (negative ones included).
    ids = ((ranks.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(0x5555)).view(
        np.int64
    )
    if importance == "random":
        values = rng.exponential(1.0, size=n).astype(np.float32)
        values[rng.random(n) < 0.05] = 0.0
    else:
        values = np.ones(n, np.float32)
    feature_index = (ranks % num_features).astype(np.int32)
    return ids, values, feature_index


def state_arrays(sketch: HotSketch):
    """State as numpy arrays, per-slot ones shaped [W, c], the slot words unpacked
    (and kept); floats viewed as integers so equality is bitwise."""
    out = {}
    slots_shape = sketch.slots.shape
    for name, tensor in sketch.read_state()._asdict().items():
        value = np.asarray(tensor.numpy())
        if name in ("fingerprints", "scores", "entries"):
            value = value.reshape(slots_shape)
        out[name] = value.view(np.int32) if value.dtype == np.float32 else value
    out["slots"] = sketch.slots.numpy()
    return out


def assert_same_state(a: HotSketch, b: HotSketch, context=""):
    sa, sb = state_arrays(a), state_arrays(b)
    for name in sa:
        assert np.array_equal(sa[name], sb[name]), f"{name} differs {context}"


def result_arrays(result):
    return [np.asarray(t.numpy()) for t in result]


def fingerprints_of(keys):
    """The sketch's 32-bit fingerprints of int64 keys, as a list of ints."""
    return hashing.fingerprint(tf.constant(keys, tf.int64)).numpy().tolist()


def check_invariants(sketch: HotSketch):
    s = state_arrays(sketch)
    fps, entries = s["fingerprints"], s["entries"]
    tag_bits = sketch.config.tag_bits
    scores = s["scores"].view(np.float32)
    occupied = scores > 0
    assert np.all((fps >= 0) & (fps < 2**32)), "fingerprint out of range"
    for b in range(fps.shape[0]):
        live = fps[b][occupied[b]]
        assert len(set(live.tolist())) == len(live), f"fingerprint twice in bucket {b}"
    assert np.all(entries[~occupied] == -1), "empty slot holds an entry"
    assert np.all(fps[~occupied] == 0), "empty slot holds a fingerprint"
    hot = entries[entries >= 0]
    rows = hot >> tag_bits
    assert len(set(rows.tolist())) == len(rows), "hot row used twice"
    assert np.all(rows < sketch.config.hot_rows)
    tags = np.where(entries >= 0, entries & ((1 << tag_bits) - 1), (-1 - entries) >> 1)
    assert np.all((tags >= 0) & (tags < max(1, 1 << tag_bits))), "tag out of range"
