"""Shared helpers for the sketch tests: random skewed batches and exact state comparison."""
import numpy as np
import tensorflow as tf

from cafe_tf.sketch import HotSketch
from cafe_tf.sketch.reference import MAX_TAG


def zipf_batch(rng, n, distinct, alpha=1.1, importance="random", tags=1):
    """n ids drawn from Zipf(alpha) over `distinct` ids, spread over int64."""
    ranks = np.minimum(rng.zipf(alpha, size=n), distinct) - 1
    # Map ranks to scattered signed int64 ids (negative ones included).
    ids = ((ranks.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(0x5555)).view(np.int64)
    if importance == "random":
        values = rng.exponential(1.0, size=n).astype(np.float32)
        values[rng.random(n) < 0.05] = 0.0
    else:
        values = np.ones(n, np.float32)
    tag_values = (ranks % tags).astype(np.int32)
    return ids, values, tag_values


def state_arrays(sketch: HotSketch):
    """State as numpy arrays, per-slot ones shaped [W, c], the int32 arrays unpacked;
    floats viewed as integers so equality is bitwise."""
    out = {}
    slots_shape = sketch.keys.shape
    for name, tensor in sketch.read_state()._asdict().items():
        value = np.asarray(tensor.numpy())
        if name in ("keys", "scores", "rows"):
            value = value.reshape(slots_shape)
        out[name] = value.view(np.int32) if value.dtype == np.float32 else value
    out["packed_int32"] = sketch.packed_int32.numpy()  # padding included
    return out


def assert_same_state(a: HotSketch, b: HotSketch, context=""):
    sa, sb = state_arrays(a), state_arrays(b)
    for name in sa:
        assert np.array_equal(sa[name], sb[name]), f"{name} differs {context}"


def result_arrays(result):
    return [np.asarray(t.numpy()) for t in result]


def check_invariants(sketch: HotSketch):
    s = state_arrays(sketch)
    keys, rows, row_slot = s["keys"], s["rows"], s["row_slot"]
    scores = s["scores"].view(np.float32)
    occupied = scores > 0
    for b in range(keys.shape[0]):
        live = keys[b][occupied[b]]
        assert len(set(live.tolist())) == len(live), f"key twice in bucket {b}"
    assert np.all(rows[~occupied] == -1), "empty slot holds a hot row"
    assert np.all(keys[~occupied] == 0), "empty slot holds a key"
    hot = rows[rows >= 0]
    assert len(set(hot.tolist())) == len(hot), "hot row used twice"
    assert np.all(hot < sketch.config.hot_rows)
    used = row_slot >= 0
    assert used.sum() == len(hot), "free rows + used rows != all rows"
    flat_rows = rows.reshape(-1)
    for row in np.flatnonzero(used):
        assert flat_rows[row_slot[row]] == row, "row_slot and rows disagree"
    assert np.all(scores[rows >= 0] >= 0)
    row_tag = s["row_tag"]
    assert np.all(row_tag[~used] == 0), "free row holds a tag"
    assert np.all((row_tag >= 0) & (row_tag <= MAX_TAG)), "tag out of range"
