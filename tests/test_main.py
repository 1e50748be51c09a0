"""The main job runs end to end on a small synthetic dataset and reports every kind."""
from cafe_tf import main


def test_main_job_reports_every_kind(capsys):
    results = main.main(["--rows-per-day", "2000", "--days", "2", "--batch-size", "256",
                         "--compression-ratio", "20", "--kinds", "cafe", "hash", "full", "qr",
                         "--verbose", "0"])
    assert [r.kind for r in results] == ["cafe", "hash", "full", "qr"]
    for r in results:
        assert 0.0 <= r.auc <= 1.0 and r.logloss > 0 and r.train_samples_per_sec > 0
    cafe, hash_, full, _ = results
    budget = full.memory_bytes // 20
    assert cafe.memory_bytes <= budget and hash_.memory_bytes <= budget
    assert 0.0 < cafe.hot_lookup_share <= 1.0
    out = capsys.readouterr().out
    assert "test AUC" in out and "hot lookups" in out
