"""The main job (`python -m cafe_tf.main`, what `bash .ci/main` runs) trains every kind on
a small synthetic dataset and reports each under the same budget."""

import json

from cafe_tf import main


def test_main_job_reports_every_kind(tmp_path, capsys):
    report = tmp_path / "report.json"
    code = main.main(
        [
            "--rows-per-day",
            "2000",
            "--days",
            "2",
            "--scale",
            "1e-3",
            "--batch-size",
            "256",
            "--compression-ratio",
            "20",
            "--learning-rate",
            "0.02",
            "--epochs",
            "3",
            "--kinds",
            "cafe",
            "hash",
            "full",
            "qr",
            "--verbose",
            "0",
            "--json",
            str(report),
        ]
    )
    assert code == 0
    results = json.loads(report.read_text())["results"]
    assert [r["kind"] for r in results] == ["cafe", "hash", "full", "qr"]
    for r in results:
        # Every kind learns: over seeds 0-2 the lowest test AUC was 0.574 (hash, seed 2), while
        # a model that learns nothing scores 0.5 +- 0.015 (one std) on these 2000 test rows.
        assert r["auc"] > 0.55, r
        assert r["logloss"] > 0 and r["train_samples_per_sec"] > 0
    cafe, hash_, full, qr = results
    budget = full["memory_bytes"] // 20
    assert max(cafe["memory_bytes"], hash_["memory_bytes"], qr["memory_bytes"]) <= budget
    assert 0.0 < cafe["hot_lookup_share"] <= 1.0
    out = capsys.readouterr().out
    assert "test AUC" in out and "hot lookups" in out
