"""`cafe-tf inspect DIR`: what a CAFE model saved by `cafe-tf train --save` holds.

For each CAFE layer: its layout (hot rows, sketch buckets, hashed rows), the bytes of
each part, the hot rows in use, its promotion and lookup counters, and the hottest keys
of each feature with their sketch scores. The sketch keeps a 32-bit fingerprint of each
key, not the id, so keys are shown as fingerprints in hex. State is read through the
layer's API (`layer.sketch.read_state()`), never from raw checkpoint variables.
"""

import argparse
from typing import NamedTuple

import numpy as np

from cafe_tf.cli import saved_run
from cafe_tf.layers import CafeEmbeddingCollection, find_cafe_layers
from cafe_tf.sketch import reference


class HotId(NamedTuple):
    """One key tracked by the sketch: its 32-bit fingerprint (`hashing.fingerprint` of
    the feature's sketch key), its score and its hot row (-1: not hot)."""

    fingerprint: int
    score: float
    hot_row: int


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "inspect",
        help="show a saved CAFE model's layout, bytes and hottest keys",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
    )
    parser.add_argument(
        "directory",
        metavar="DIR",
        help="a directory written by `cafe-tf train --save` (or one of its <kind> subdirectories)",
    )
    parser.add_argument(
        "--top", type=int, default=5, metavar="N", help="hottest keys shown per feature (default 5)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for directory in saved_run.run_directories(args.directory):
        model = saved_run.load(directory)
        for layer in find_cafe_layers(model):
            print(f"{directory}: {type(model).__name__}, CAFE layer '{layer.name}'")
            print(describe(layer, args.top))
    return 0


def hottest_ids(layer: CafeEmbeddingCollection, top: int) -> dict[str, list[HotId]]:
    """The `top` keys of each feature with the highest sketch scores, highest first
    (ties: fingerprint ascending).

    The sketch keeps each key's 32-bit fingerprint, not its id: the fingerprint of
    id x of feature i is `hashing.fingerprint(hashing.field_keys(x, i))`.
    """
    state = layer.sketch.read_state()
    tag_bits = layer.sketch_config.tag_bits
    fingerprints, scores = state.fingerprints.numpy(), state.scores.numpy()
    rows = reference.entry_rows(state.entries, tag_bits).numpy()
    tags = reference.slot_tags(state, tag_bits).numpy()
    occupied = scores > 0
    result = {}
    for index, feature in enumerate(layer.features):
        slots = np.flatnonzero(occupied & (tags == index))
        slots = slots[np.lexsort((fingerprints[slots], -scores[slots]))][:top]
        result[feature.name] = [
            HotId(int(fingerprints[s]), float(scores[s]), int(rows[s])) for s in slots
        ]
    return result


def _decay(sketch) -> str:
    """The sketch's decay schedule, in the terms it was configured with."""
    if sketch.decay_rule == "batches":
        schedule = f"decay x{sketch.decay_rate:g} every {sketch.decay_period} batches"
    elif sketch.decay_half_life is not None:
        schedule = f"scores halve per {sketch.decay_half_life:g} x hot rows x k of importance"
    else:
        schedule = (
            f"decay x{sketch.decay_rate:g} per {sketch.decay_mass_factor:g} x W x k of importance"
        )
    swaps = "no swaps" if sketch.swap_margin is None else f"swap margin {sketch.swap_margin:g}"
    fill = "free rows filled below k" if sketch.fill_free_rows else "free rows wait for k"
    return (
        f"{schedule}, {swaps}, {fill}, demotion below {sketch.effective_demote_threshold:g}, "
        f"hot keys below {sketch.yield_threshold:g} yield to any key at k"
    )


def describe(layer: CafeEmbeddingCollection, top: int) -> str:
    """A text report of `layer`: layout, bytes, use and hottest ids."""
    config, layout, sketch = layer.config, layer.layout, layer.sketch_config
    parts = layout.bytes
    used = int(layer.sketch.hot_rows_used())
    lookups, hot_lookups = int(layer.lookups.numpy()), int(layer.hot_lookups.numpy())
    share = f"{hot_lookups / lookups:.1%}" if lookups else "n/a"
    medium = (
        f"; medium level {layout.medium_table_rows:,} rows ({parts['medium_tables']:,} B)"
        if layer.multi_level
        else ""
    )
    lines = [
        f"  features      {len(layer.features)}, embedding_dim {config.embedding_dim}, "
        f"importance {config.importance}",
        f"  budget        {layer.budget_bytes:,} bytes; holds {layer.memory_bytes():,}",
        f"  hot table     {layout.hot_rows:,} rows ({parts['hot_table']:,} B); in use {used:,}",
        f"  sketch        {sketch.num_buckets:,} buckets x {sketch.slots_per_bucket} slots "
        f"({parts['sketch']:,} B); threshold k {sketch.threshold:g}; {_decay(sketch)}; "
        f"{sketch.replacement} on a full bucket, second sighting "
        f"{'on' if sketch.second_sighting else 'off'}",
        f"  hashed tables {layout.hashed_table_rows:,} rows "
        f"{'shared by' if layout.shared_hashed_tables else 'over'} {len(layer.features)} features "
        f"({parts['hashed_tables']:,} B){medium}",
        f"  counters      {int(layer.promotions.numpy()):,} promotions, "
        f"{int(layer.demotions.numpy()):,} demotions; {share} of {lookups:,} training lookups "
        "served hot",
        "  hottest keys per feature (32-bit key fingerprint in hex, as the sketch keeps "
        "it: score, * = hot):",
    ]
    for name, ids in hottest_ids(layer, top).items():
        entries = ", ".join(
            f"{h.fingerprint:#010x}: {h.score:.4g}{'*' if h.hot_row >= 0 else ''}" for h in ids
        )
        lines.append(f"    {name:<12} {entries or '(none tracked)'}")
    return "\n".join(lines)
