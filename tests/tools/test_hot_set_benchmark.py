"""benchmarks/hot_set.py: its --quick cell end to end, and the decomposition of the share
CAFE loses against offline separation on a hand-made history."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

_BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def hot_set():
    # hot_set.py imports quality.py from its own folder, as a script run would.
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(_BENCHMARKS))
        spec = importlib.util.spec_from_file_location(
            "hot_set_benchmark", _BENCHMARKS / "hot_set.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


def test_quick_cell(hot_set, tmp_path):
    (cell,) = hot_set.main(["--quick", "--out", str(tmp_path), "--name", "t"])
    assert cell["auc"] is not None and 0 < cell["hot_rows"]
    # Offline separation got CAFE's H rows exactly, and no more bytes than it was given.
    assert cell["offline_rows"] == cell["hot_rows"]
    shares = ["cafe_share", "offline_share", "per_day_share", "warmup", "churn", "never", "outside"]
    for name in shares:
        assert 0 <= cell[name] <= 1, name
    for name in ("cafe_tenths", "offline_tenths", "per_day_tenths"):
        assert len(cell[name]) == 10 and all(0 <= share <= 1 for share in cell[name]), name
    # Every lookup was flagged: the callback checked its flags against the layer's counter.
    assert cell["lookups"] == 8000 * 11
    assert cell["cafe_share"] > 0 and cell["warmup"] > 0  # it starts empty, then promotes
    assert cell["offline_share"] - cell["cafe_share"] == pytest.approx(
        cell["warmup"] + cell["churn"] + cell["never"] - cell["outside"], abs=1e-9
    )
    # Each day's own top H serves at least as many of that day's lookups as any H ids.
    assert cell["per_day_share"] >= cell["offline_share"]
    assert cell["top_held"] + cell["top_never_held"] == cell["hot_rows"]
    assert json.loads((tmp_path / "t.json").read_text()) == [cell]
    table = (tmp_path / "t.md").read_text()
    assert f"| kdd12 | cafe | 100x | 0 | {cell['hot_rows']:,} | {cell['cafe_share']:.4f} |" in table
    assert (tmp_path / "t.png").stat().st_size > 0


def test_decompose_splits_the_missed_lookups_by_when(hot_set):
    # One feature, 7 batches of one row each; top-H keys 10, 20 and 30; key 40 outside.
    keys = np.array([[10], [10], [20], [10], [40], [10], [20]])
    hot = np.array([[False], [False], [False], [True], [True], [False], [False]])
    top = np.array([10, 20, 30])
    parts = hot_set.decompose(hot, np.isin(keys, top), keys, top, np.arange(7))
    # 10: missed at batches 0 and 1 (warm-up), hot at 3, missed at 5 (churn); 20: never hot.
    assert (parts["warmup"], parts["churn"], parts["never"]) == (2, 1, 2)
    assert parts["outside"] == 1 and parts["outside_ids"] == 1
    # 30 was never looked up, so never held either.
    assert (parts["top_held"], parts["top_never_held"], parts["top_churned"]) == (1, 2, 1)


def test_cell_where_cafe_shares_fewer_hashed_rows_than_features(hot_set, tmp_path):
    """At 1000x of a small Avazu-shaped vocabulary CAFE's 22 features share a few hashed
    rows: offline separation cannot take them (one row per feature), so its AUC is n/a
    while both shares are still counted."""
    args = ["--datasets", "avazu", "--ratios", "1000", "--rows-per-day", "4000", "--days", "3"]
    args += ["--scale", "2e-3", "--batch-size", "256", "--out", str(tmp_path), "--name", "t"]
    (cell,) = hot_set.main(args)
    assert cell["auc"] is not None and cell["hashed_rows"] < 22
    assert cell["offline_auc"] is None and cell["auc_gap"] is None
    assert 0 < cell["cafe_share"] <= 1 and 0 < cell["offline_share"] <= 1
    assert cell["offline_share"] - cell["cafe_share"] == pytest.approx(
        cell["warmup"] + cell["churn"] + cell["never"] - cell["outside"], abs=1e-9
    )
    assert "| n/a | n/a |" in (tmp_path / "t.md").read_text()
