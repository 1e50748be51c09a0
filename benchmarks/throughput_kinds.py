"""Training throughput of every embedding kind in one run, as ratios to the hashing trick.

The CAFE paper's table (Criteo, 5x, samples/s on a GPU): hash 8015, Q-R 4757,
MDE 5740, AdaEmbed 4571, CAFE 4589, i.e. 0.59, 0.72, 0.57 and 0.57 of hash.
Here: a DLRM step on batches of the synthetic Criteo-shaped data, generated
once and cached in memory (the input pipeline is not measured), with each
kind's callback (CAFE migration every step, AdaEmbed reallocation every 20).
The kinds are timed in turn, `--repeats` rounds, and the median is kept, so
load from other processes hits all kinds alike. A fit's samples/s counts its
steps, callbacks included, not its setup and teardown (train_speed.py). Prints
samples/s and the ratio to hash, and writes benchmarks/out/throughput_kinds.{json,png}.

    python benchmarks/throughput_kinds.py [--ratio 5] [--batch-size 4096] [--steps 20]
"""

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import tf_keras
from train_speed import samples_per_second

from cafe_tf.callbacks import CafeMigration
from cafe_tf.data import SyntheticCriteo, SyntheticCriteoConfig
from cafe_tf.experiment import EMBEDDINGS, SMALL_MODEL_OPTIONS, make_embedding
from cafe_tf.layers.offline import count_frequencies
from cafe_tf.models import DLRM
from cafe_tf.reallocation import AdaEmbedReallocation

OUT = Path(__file__).resolve().parent / "out"
PAPER_GPU = {"hash": 8015, "qr": 4757, "mde": 5740, "adaembed": 4571, "cafe": 4589}


def build(kind, data, batches, frequencies, args):
    embedding = make_embedding(
        kind, data.vocabulary_sizes, args.dim, args.ratio, frequencies=frequencies
    )
    model = DLRM(embedding, **SMALL_MODEL_OPTIONS["dlrm"])
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3))
    callbacks = {
        "cafe": [CafeMigration(every_n_steps=1)],
        "cafe_ml": [CafeMigration(every_n_steps=1)],
        "adaembed": [AdaEmbedReallocation(every_n_steps=20)],
    }.get(kind, [])
    model.fit(batches.take(3), epochs=1, verbose=0, callbacks=callbacks)  # trace and warm up
    return model, callbacks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=list(EMBEDDINGS), choices=EMBEDDINGS)
    parser.add_argument("--ratio", type=float, default=5)
    parser.add_argument("--scale", type=float, default=2e-2)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if "hash" not in args.kinds:
        parser.error("--kinds must include hash, the reference of the ratios")

    data = SyntheticCriteo(
        SyntheticCriteoConfig(
            seed=0, rows_per_day=args.batch_size * args.steps, num_days=2, scale=args.scale
        )
    )
    batches = data.day_dataset(0, args.batch_size).cache()
    frequencies = count_frequencies(batches, data.field_names)
    models = {kind: build(kind, data, batches, frequencies, args) for kind in args.kinds}
    rates = {kind: [] for kind in args.kinds}
    for _ in range(args.repeats):
        for kind, (model, callbacks) in models.items():
            rates[kind].append(
                samples_per_second(model, callbacks, batches, args.batch_size * args.steps)
            )
    median = {kind: float(np.median(values)) for kind, values in rates.items()}

    print(
        f"DLRM training, batch {args.batch_size}, {args.ratio:g}x, median of {args.repeats} "
        "(2-core CPU)"
    )
    print(f"{'kind':>9} {'samples/s':>10} {'vs hash':>8} {'paper GPU vs hash':>18}")
    for kind, rate in median.items():
        paper = f"{PAPER_GPU[kind] / PAPER_GPU['hash']:.2f}" if kind in PAPER_GPU else ""
        print(f"{kind:>9} {rate:>10,.0f} {rate / median['hash']:>8.2f} {paper:>18}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "throughput_kinds.json").write_text(
        json.dumps({"args": vars(args), "samples_per_sec": rates, "median": median}, indent=2)
    )
    fig, ax = plt.subplots(figsize=(7, 3.5))
    kinds = list(median)
    x = np.arange(len(kinds))
    ax.bar(x - 0.2, [median[k] / median["hash"] for k in kinds], 0.4, label="cafe_tf, 2-core CPU")
    ax.bar(
        x + 0.2,
        [PAPER_GPU.get(k, np.nan) / PAPER_GPU["hash"] for k in kinds],
        0.4,
        label="paper, GPU",
    )
    ax.set_xticks(x, kinds)
    ax.set_ylabel("training throughput / hash")
    ax.set_title(f"DLRM, {args.ratio:g}x, batch {args.batch_size}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "throughput_kinds.png", dpi=120)
    print(f"wrote {OUT / 'throughput_kinds.png'}, .json")


if __name__ == "__main__":
    main()
