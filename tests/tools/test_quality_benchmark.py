"""benchmarks/quality.py: a tiny grid cell end to end, and the cell files' resume, redo
and merge logic behind its table (without training)."""

import importlib.util
import json
import types
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "quality.py"


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("quality_benchmark", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = [
    "--datasets",
    "kdd12",
    "--models",
    "dlrm",
    "--rows-per-day",
    "6000",
    "--days",
    "2",
    "--scale",
    "1e-4",
    "--batch-size",
    "256",
    "--learning-rate",
    "0.02",
    "--seeds",
    "0",
]


def _args(tmp_path, *extra):
    return TINY + [
        "--cells",
        str(tmp_path / "cells"),
        "--out",
        str(tmp_path / "out"),
        "--name",
        "t",
        *extra,
    ]


def _lines(tmp_path, shape="kdd12", seed=0):
    path = tmp_path / "cells" / f"{shape}_seed{seed}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_cell_trains_and_one_too_small_budget_is_na(quality, tmp_path):
    table = quality.main(_args(tmp_path, "--kinds", "hash", "--ratios", "10", "1e9"))
    data, trained, too_small = _lines(tmp_path)
    assert data["record"] == "data" and data["cpu_seconds"] > 0
    assert trained["kind"] == "hash" and trained["memory_bytes"] > 0
    # The cell learns: 0.638 / 0.575 / 0.642 test AUC at seeds 0 / 1 / 2, while a model that
    # learns nothing scores 0.5 +- 0.009 (one std) on these 6000 test rows.
    assert trained["auc"] > 0.55, trained
    assert trained["seconds"] > 0 and trained["cpu_seconds"] > 0 and trained["commit"]
    assert too_small["auc"] is None and too_small["ratio"] == 1e9
    assert "| 10x | **" in table and "| 1e+09x | n/a |" in table
    assert (tmp_path / "out" / "t.png").stat().st_size > 0


def _fake_run_one(args, seed, shape, data, options, model, ratio, kind):
    """A cell without training: AUC from the kind, ratio and seed; n/a for Q-R at 1000x."""
    auc = (
        None
        if (kind == "qr" and ratio == 1000)
        else (0.7 - 0.01 * len(kind) - 0.001 * ratio / 100 + 0.01 * seed)
    )
    return {
        "record": "cell",
        "shape": shape,
        "seed": seed,
        "model": model,
        "kind": kind,
        "ratio": 1.0 if kind == "full" else float(ratio),
        "auc": auc,
        "logloss": 0.5,
        "memory_bytes": 1,
        "exclusive_rows": 7 if kind == "cafe" else None,
        "hot_lookup_share": 0.5 if kind == "cafe" else None,
        "train_samples_per_sec": 1.0,
        "seconds": 60.0,
        "cpu_seconds": 90.0,
    }


def test_resume_redo_and_merged_table(quality, tmp_path, monkeypatch):
    monkeypatch.setattr(quality, "run_one", _fake_run_one)
    monkeypatch.setattr(
        quality,
        "load_data",
        lambda args, shape, seed: (
            types.SimpleNamespace(vocabulary_sizes={"f": 1}, field_names=["f"]),
            {},
        ),
    )
    grid = ["--kinds", "full", "qr", "cafe", "--ratios", "100", "1000", "--seeds", "0", "1"]
    quality.main(_args(tmp_path, *grid))
    assert len(_lines(tmp_path)) == 1 + 5  # data + full, qr and cafe at two ratios
    quality.main(_args(tmp_path, *grid))  # everything stored: nothing runs again
    assert len(_lines(tmp_path)) == 6
    # Other sizes are other cells: they run, and the table of one size ignores the other's.
    quality.main(_args(tmp_path, *grid, "--test-rows", "100"))
    assert len(_lines(tmp_path)) == 12

    # A rerun of one kind appends its cells; the table takes the last line of each.
    better = lambda *a: {**_fake_run_one(*a), "auc": 0.9}  # noqa: E731
    monkeypatch.setattr(quality, "run_one", better)
    quality.main(_args(tmp_path, *grid, "--kinds", "cafe", "--redo", "--seeds", "0"))
    assert len(_lines(tmp_path)) == 12 + 3
    table = quality.main(_args(tmp_path, *grid, "--table-only"))
    # seed 0's cafe cells are 0.9 now; seed 1's are the first run's: 0.7 - 0.04 - ... + 0.01
    assert "| 100x | 0.6840 +- 0.0050 | **0.7845 +- 0.1155** |" in table
    assert "| 1000x | n/a | **0.7800 +- 0.1200** |" in table
    assert "full: AUC 0.6640 +- 0.0050" in table
    assert "| kdd12 | 100x |  |  | 7 | 0.500 |" in table
    # Cost per (shape, seed): the data record and the last line of each cell.
    assert "| kdd12 | 0 | 5 | 5.0 | 7.5 | 3.8 |" in table

    # A seed with some cells of a panel only is left out of it, and said so.
    partial = dict(_lines(tmp_path)[1], seed=2, auc=0.1)
    (tmp_path / "cells" / "kdd12_seed2.jsonl").write_text(json.dumps(partial) + "\n")
    table = quality.main(_args(tmp_path, *grid, "--seeds", "0", "1", "2", "--table-only"))
    assert "kdd12, DLRM, seed 2: 1 of 5 cells" in table
    assert "full: AUC 0.6640 +- 0.0050" in table

    # --load merges files in order, later lines winning, and trains nothing.
    other = tmp_path / "other.jsonl"
    cell = dict(_lines(tmp_path)[1], auc=0.1, seed=0)
    other.write_text(json.dumps(cell) + "\n")
    merged = quality.main(
        _args(tmp_path, *grid, "--load", str(tmp_path / "cells" / "kdd12_seed0.jsonl"), str(other))
    )
    assert "full: AUC 0.1000)" in merged


def test_margin_table_pairs_the_seeds_of_the_better_kinds(quality):
    def cell(kind, ratio, seed, auc):
        return dict(shape="kdd12", model="dlrm", kind=kind, ratio=float(ratio), seed=seed, auc=auc)

    cells = [
        # 10x: cafe_ml beats cafe by mean; offline beats adaembed by mean.
        *(cell("cafe", 10, s, a) for s, a in enumerate([0.70, 0.70])),
        *(cell("cafe_ml", 10, s, a) for s, a in enumerate([0.72, 0.695])),
        *(cell("offline", 10, s, a) for s, a in enumerate([0.71, 0.70])),
        *(cell("adaembed", 10, s, a) for s, a in enumerate([0.60, 0.60])),
        # 100x: no rival fits the budget.
        *(cell("cafe", 100, s, 0.65) for s in range(2)),
        *(cell(kind, 100, s, None) for kind in ("offline", "adaembed") for s in range(2)),
    ]
    args = types.SimpleNamespace(datasets=["kdd12"], models=["dlrm"], ratios=[10.0, 100.0])
    table = quality.margin_table(cells, args)
    # cafe_ml - offline per seed: +0.01 and -0.005.
    assert "| kdd12, DLRM | 10x | cafe_ml | offline | +0.0025 | -0.0050 to +0.0100 | 1 of 2 |" in (
        table
    )
    assert "| kdd12, DLRM | 100x | cafe | none fits | | | |" in table
    no_cafe = [c for c in cells if not c["kind"].startswith("cafe")]
    assert quality.margin_table(no_cafe, args) == ""
