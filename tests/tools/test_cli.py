"""`cafe-tf`: train on Criteo TSV and Parquet files, inspect and serve what it saved,
list the benchmarks, and refuse bad arguments with a message and no traceback."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from sklearn.metrics import roc_auc_score

from cafe_tf import cli, hashing
from cafe_tf.cli import saved_run, vocab
from cafe_tf.cli.inspection import describe, hottest_ids
from cafe_tf.data.criteo import CATEGORICAL_FIELDS, DENSE_FIELDS

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

# Few ids per field, so the hot ones take hot rows within a few hundred rows.
IDS_PER_FIELD = 40
VOCABULARY = {f: IDS_PER_FIELD for f in CATEGORICAL_FIELDS}


def criteo_rows(n, seed):
    """(label, ints, hex ids): C1's id decides the click, the other fields are noise."""
    rng = np.random.default_rng(seed)
    ids = np.minimum(rng.zipf(1.5, (n, len(CATEGORICAL_FIELDS))), IDS_PER_FIELD) - 1
    label = (ids[:, 0] % 2 == 0).astype(int)
    ints = rng.integers(0, 100, (n, len(DENSE_FIELDS)))
    return [
        (int(y), [int(v) for v in i], [f"{int(c):08x}" for c in row])
        for y, i, row in zip(label, ints, ids)
    ]


def write_tsv(path, rows):
    path.write_text(
        "".join(
            "\t".join([str(y)] + [str(v) for v in ints] + cats) + "\n" for y, ints, cats in rows
        )
    )
    return str(path)


def write_parquet(path, rows, drop=()):
    columns = {"label": [y for y, _, _ in rows]}
    columns.update({f: [ints[i] for _, ints, _ in rows] for i, f in enumerate(DENSE_FIELDS)})
    columns.update({f: [cats[i] for _, _, cats in rows] for i, f in enumerate(CATEGORICAL_FIELDS)})
    pq.write_table(pa.table({k: v for k, v in columns.items() if k not in drop}), str(path))
    return str(path)


@pytest.fixture
def vocabulary_file(tmp_path):
    path = tmp_path / "vocabulary.json"
    path.write_text(json.dumps(VOCABULARY))
    return str(path)


def run_cli(*args):
    """The exit code of `cafe-tf args`, run in this process."""
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    return code


def test_train_on_tsv_then_inspect_and_serve(tmp_path, vocabulary_file, capsys):
    days = [write_tsv(tmp_path / f"day_{d}.tsv", criteo_rows(600, seed=d)) for d in range(3)]
    report, plot, saved = tmp_path / "report.json", tmp_path / "plot.png", tmp_path / "saved"
    code = run_cli(
        "train",
        "--data",
        "criteo-tsv",
        "--train-files",
        days[0],
        days[1],
        "--test-files",
        days[2],
        "--vocabulary-sizes",
        vocabulary_file,
        "--kinds",
        "cafe",
        "hash",
        "--compression-ratio",
        4,
        "--batch-size",
        100,
        "--learning-rate",
        0.01,
        "--verbose",
        0,
        "--json",
        report,
        "--plot",
        plot,
        "--save",
        saved,
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "test AUC" in out and "hot lookups" in out

    results = json.loads(report.read_text())
    budget = results["budget_bytes"]
    assert budget == 26 * IDS_PER_FIELD * 16 * 4 // 4
    assert [r["kind"] for r in results["results"]] == ["cafe", "hash"]
    cafe, hashed = results["results"]
    assert cafe["memory_bytes"] <= budget and hashed["memory_bytes"] <= budget
    assert cafe["auc"] > 0.9, "C1 decides the label: the model must learn it"
    assert 0 < cafe["hot_lookup_share"] <= 1 and hashed["hot_lookup_share"] is None
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert sorted(os.listdir(saved)) == ["cafe"]  # only CAFE models are saved

    assert run_cli("inspect", saved, "--top", 3) == 0
    shown = capsys.readouterr().out
    assert "hot table" in shown and "hottest keys per feature" in shown
    assert "fingerprint in hex" in shown

    model = saved_run.load(str(saved / "cafe"))
    (layer,) = [m for m in model.submodules if type(m).__name__ == "CafeEmbeddingCollection"]
    assert int(layer.sketch.hot_rows_used()) > 0
    tables = "shared by" if layer.layout.shared_hashed_tables else "over"
    assert f"hashed tables {layer.layout.hashed_table_rows:,} rows {tables} 26 features" in shown
    hottest = hottest_ids(layer, top=3)
    # The sketch keeps fingerprints of the keys (ids XOR a salt per feature): each is the
    # fingerprint of one of the ids written (0..39) of its own feature.
    tracked = [h for ids in hottest.values() for h in ids]
    assert len(tracked) > 26
    for index, feature in enumerate(layer.features):
        written = set(
            hashing.fingerprint(hashing.field_keys(tf.range(IDS_PER_FIELD, dtype=tf.int64), index))
            .numpy()
            .tolist()
        )
        assert all(h.fingerprint in written for h in hottest[feature.name]), feature.name
    assert any(h.hot_row >= 0 for h in tracked)
    for ids in hottest.values():
        assert [h.score for h in ids] == sorted((h.score for h in ids), reverse=True)
    assert f"C1           {hottest['C1'][0].fingerprint:#010x}: " in shown

    # The serving SavedModel predicts what the restored checkpoint predicts.
    served = tf.saved_model.load(str(saved / "cafe" / "serving")).signatures["serving_default"]
    rng = np.random.default_rng(0)
    ids = {f: tf.constant(rng.integers(0, IDS_PER_FIELD, 8), tf.int64) for f in CATEGORICAL_FIELDS}
    dense = tf.constant(rng.random((8, len(DENSE_FIELDS))), tf.float32)
    expected = model({"dense": dense, "sparse": ids}, training=False).numpy()
    np.testing.assert_allclose(
        served(dense=dense, **ids)["predictions"].numpy(), expected, rtol=1e-5, atol=1e-6
    )


def test_train_on_parquet_with_a_byte_budget(tmp_path, vocabulary_file, capsys):
    train = write_parquet(tmp_path / "train.parquet", criteo_rows(600, seed=1))
    test = write_parquet(tmp_path / "test.parquet", criteo_rows(200, seed=2))
    report = tmp_path / "report.json"
    code = run_cli(
        "train",
        "--data",
        "criteo-parquet",
        "--train-files",
        train,
        "--test-files",
        test,
        "--vocabulary-sizes",
        vocabulary_file,
        "--kinds",
        "cafe",
        "--budget-bytes",
        20_000,
        "--batch-size",
        128,
        "--model",
        "dcn",
        "--verbose",
        0,
        "--json",
        report,
    )
    assert code == 0, capsys.readouterr().err
    (cafe,) = json.loads(report.read_text())["results"]
    # Within the budget; the hashed rows' split over 26 fields of 40 ids rounds down per field.
    assert 18_500 < cafe["memory_bytes"] <= 20_000
    assert cafe["compression_ratio"] == pytest.approx(26 * IDS_PER_FIELD * 64 / 20_000)


def test_on_error_skip_reports_the_lines_skipped_per_file(tmp_path, vocabulary_file, capsys):
    rows = criteo_rows(300, seed=1)
    bad_label, short = (2, rows[0][1], rows[0][2]), (0, rows[0][1][:5], rows[0][2])
    days = [
        write_tsv(tmp_path / "day_0.tsv", rows[:100] + [bad_label] + rows[100:150] + [short]),
        write_tsv(tmp_path / "day_1.tsv", rows[150:250]),
        write_tsv(tmp_path / "day_2.tsv", rows[250:] + [bad_label]),
    ]
    (tmp_path / "day_1.tsv").write_text(
        (tmp_path / "day_1.tsv").read_text().replace("\t", "\tx", 1)
    )  # label "0\tx..." -> bad
    report = tmp_path / "report.json"
    args = [
        "train",
        "--data",
        "criteo-tsv",
        "--train-files",
        days[0],
        days[1],
        "--test-files",
        days[2],
        "--vocabulary-sizes",
        vocabulary_file,
        "--kinds",
        "hash",
        "--epochs",
        2,
        "--compression-ratio",
        2,
        "--batch-size",
        64,
        "--verbose",
        0,
    ]
    assert run_cli(*args, "--json", report, "--on-error", "skip") == 0
    out = capsys.readouterr().out
    # Each line once, though the training files are read twice (two epochs) and the first
    # batch once more to build the model.
    expected = {days[0]: 2, days[1]: 1, days[2]: 1}
    assert json.loads(report.read_text())["skipped_lines"] == expected
    assert "malformed lines skipped (--on-error skip): 4\n" in out
    for path, count in expected.items():
        assert re.search(rf"^  {re.escape(path)} +{count}$", out, re.M), out
    assert run_cli(*args) == 1  # --on-error raise (the default): the first bad line
    assert re.search(r"day_0.tsv:101: malformed Criteo line \(label", capsys.readouterr().err)


def test_vocab_counts_the_distinct_ids_of_every_field(tmp_path, monkeypatch, capsys):
    days = [criteo_rows(300, seed=d) for d in range(2)]
    days[1][5][2][1] = ""  # a missing C2: one more id of its own
    expected = {
        f: len({row[2][i] for day in days for row in day}) for i, f in enumerate(CATEGORICAL_FIELDS)
    }
    assert expected["C2"] == len({row[2][1] for row in days[0] + days[1] if row[2][1]}) + 1
    tsv = [write_tsv(tmp_path / f"day_{d}.tsv", rows) for d, rows in enumerate(days)]
    parquet = [write_parquet(tmp_path / f"day_{d}.parquet", rows) for d, rows in enumerate(days)]
    # Merging every few ids exercises the merge of the sorted arrays, not only the last one.
    monkeypatch.setattr(vocab, "MERGE_IDS", 7)
    for data, files in (("criteo-tsv", tsv), ("criteo-parquet", parquet)):
        out = tmp_path / f"{data}.json"
        assert (
            run_cli("vocab", "--data", data, "--files", *files, "--batch-size", 64, "--out", out)
            == 0
        ), capsys.readouterr().err
        assert json.loads(out.read_text()) == expected, data
        shown = capsys.readouterr().out
        assert f"[1/2] {files[0]}: 300 rows; 300 in all" in shown
        assert f"[2/2] {files[1]}: 300 rows; 600 in all" in shown
    monkeypatch.setattr(vocab, "MERGE_IDS", 1 << 22)
    assert run_cli("vocab", "--data", "criteo-tsv", "--files", *tsv, "--out", out) == 0
    assert json.loads(out.read_text()) == expected
    # A malformed line is skipped and counted; its ids are not.
    bad = days[1] + [(2, days[1][0][1], ["ffffffff"] * len(CATEGORICAL_FIELDS))]
    malformed = write_tsv(tmp_path / "malformed.tsv", bad)
    capsys.readouterr()
    assert (
        run_cli(
            "vocab",
            "--data",
            "criteo-tsv",
            "--files",
            tsv[0],
            malformed,
            "--on-error",
            "skip",
            "--out",
            out,
        )
        == 0
    )
    assert json.loads(out.read_text()) == expected
    assert "skipped 1 malformed line(s)" in capsys.readouterr().out


def test_vocab_then_train_then_predict_scores_as_train_evaluated(tmp_path, capsys):
    days = [write_tsv(tmp_path / f"day_{d}.tsv", criteo_rows(500, seed=d)) for d in range(3)]
    vocabulary, report, saved = tmp_path / "vocab.json", tmp_path / "run.json", tmp_path / "runs"
    assert run_cli("vocab", "--data", "criteo-tsv", "--files", *days[:2], "--out", vocabulary) == 0
    assert (
        run_cli(
            "train",
            "--data",
            "criteo-tsv",
            "--train-files",
            *days[:2],
            "--test-files",
            days[2],
            "--vocabulary-sizes",
            vocabulary,
            "--kinds",
            "cafe",
            "--compression-ratio",
            4,
            "--batch-size",
            100,
            "--learning-rate",
            0.01,
            "--verbose",
            0,
            "--json",
            report,
            "--save",
            saved,
        )
        == 0
    )
    (trained,) = json.loads(report.read_text())["results"]
    assert json.loads(report.read_text())["vocabulary_sizes"] == json.loads(vocabulary.read_text())
    capsys.readouterr()

    preds = tmp_path / "preds.csv"
    assert (
        run_cli(
            "predict",
            saved,
            "--data",
            "criteo-tsv",
            "--files",
            days[2],
            "--batch-size",
            64,
            "--out",
            preds,
        )
        == 0
    ), capsys.readouterr().err
    assert "[1/1]" in capsys.readouterr().out
    lines = preds.read_text().splitlines()
    assert lines[0] == "probability"
    probabilities = np.array([float(v) for v in lines[1:]])
    labels = np.array([y for y, _, _ in criteo_rows(500, seed=2)])
    assert len(probabilities) == len(labels) and ((0 < probabilities) & (probabilities < 1)).all()
    # The same AUC as train's evaluation (Keras's AUC, 200 thresholds) from the CSV alone...
    auc = tf_keras.metrics.AUC()
    auc.update_state(labels, probabilities)
    assert float(auc.result()) == pytest.approx(trained["auc"], abs=1e-6)
    # ...and the exact rank AUC agrees with it.
    assert roc_auc_score(labels, probabilities) == pytest.approx(trained["auc"], abs=5e-3)
    assert trained["auc"] > 0.9  # C1 decides the label: a model that learned it

    # The served scores are the restored model's.
    model = saved_run.load(str(saved / "cafe"))
    rows = criteo_rows(500, seed=2)[:8]
    dense = tf.math.log1p(tf.constant([r[1] for r in rows], tf.float32))
    ids = {
        f: tf.constant([int(r[2][i], 16) for r in rows], tf.int64)
        for i, f in enumerate(CATEGORICAL_FIELDS)
    }
    expected = tf.sigmoid(model({"dense": dense, "sparse": ids}, training=False)).numpy()[:, 0]
    np.testing.assert_allclose(probabilities[:8], expected, rtol=1e-5, atol=1e-6)


def test_bench_lists_the_benchmarks(capsys):
    assert run_cli("bench") == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"quality", "sketch_throughput", "train_speed"} <= set(names)


@pytest.fixture
def files(tmp_path, vocabulary_file):
    """Paths for the bad-argument cases: good and malformed files, an empty directory."""
    rows = criteo_rows(50, seed=0)
    malformed = rows[:20] + [(2, rows[0][1], rows[0][2])] + rows[20:]  # label 2 on line 21
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{C1: 3")
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "empty.tsv").write_text("")
    return {
        "good": write_tsv(tmp_path / "good.tsv", rows),
        "malformed": write_tsv(tmp_path / "malformed.tsv", malformed),
        "no_c26": write_parquet(tmp_path / "no_c26.parquet", rows, drop=("C26",)),
        "vocabulary": vocabulary_file,
        "bad_json": str(bad_json),
        "empty": str(empty),
        "empty_file": str(tmp_path / "empty.tsv"),
        "absent": str(tmp_path / "absent.tsv"),
    }


CRITEO = [
    "train",
    "--data",
    "criteo-tsv",
    "--vocabulary-sizes",
    "{vocabulary}",
    "--verbose",
    "0",
    "--compression-ratio",
    "2",
]


@pytest.mark.parametrize(
    "args, message",
    [
        pytest.param(["train", "--compression-ratio", "0.5"], "must be >= 1", id="ratio_below_1"),
        pytest.param(
            ["train", "--compression-ratio", "10", "--budget-bytes", "100"],
            "not allowed with",
            id="ratio_and_budget",
        ),
        pytest.param(["train", "--epochs", "0"], "must be > 0", id="zero_epochs"),
        pytest.param(["train", "--batch-size", "many"], "expected an integer", id="batch_not_int"),
        pytest.param(["train", "--kinds", "cafe", "dense"], "invalid choice", id="unknown_kind"),
        pytest.param(["train", "--data", "avazu"], "invalid choice", id="unknown_data"),
        pytest.param(
            ["train", "--kinds", "cafe", "hash", "cafe"], "names a kind twice", id="kind_twice"
        ),
        pytest.param(
            ["train", "--budget-bytes", "1000"], "budget is too small", id="budget_too_small"
        ),
        pytest.param(
            ["train", "--kinds", "qr", "--compression-ratio", "5000"],
            "qr: .*too small",
            id="qr_beyond_its_minimum",
        ),
        pytest.param(
            ["train", "--kinds", "hash", "--save", "{empty}"],
            "--save writes CAFE models",
            id="save_without_cafe",
        ),
        pytest.param(
            ["train", "--json", "{absent}/report.json"],
            "--json .*: its directory does not",
            id="json_in_missing_dir",
        ),
        pytest.param(
            ["train", "--train-files", "{good}"],
            "only go with --data criteo",
            id="files_with_synthetic",
        ),
        pytest.param(
            CRITEO + ["--train-files", "{good}"],
            "needs --test-files",
            id="criteo_without_test_files",
        ),
        pytest.param(
            CRITEO + ["--train-files", "{good}", "--test-files", "{absent}"],
            "no such file: .*absent.tsv",
            id="missing_file",
        ),
        pytest.param(
            [
                "train",
                "--data",
                "criteo-tsv",
                "--vocabulary-sizes",
                "{bad_json}",
                "--train-files",
                "{good}",
                "--test-files",
                "{good}",
            ],
            "not valid JSON",
            id="malformed_vocabulary",
        ),
        pytest.param(
            CRITEO + ["--kinds", "hash", "--train-files", "{malformed}", "--test-files", "{good}"],
            r"malformed.tsv:21: malformed Criteo line \(label",
            id="malformed_tsv_line",
        ),
        pytest.param(
            CRITEO + ["--kinds", "hash", "--train-files", "{good}", "--test-files", "{empty_file}"],
            "empty file .*empty.tsv",
            id="empty_test_file",
        ),
        pytest.param(
            CRITEO + ["--kinds", "hash", "--train-files", "{empty_file}", "--test-files", "{good}"],
            "empty file .*empty.tsv",
            id="empty_train_file",
        ),
        pytest.param(
            [
                "train",
                "--data",
                "criteo-parquet",
                "--vocabulary-sizes",
                "{vocabulary}",
                "--train-files",
                "{no_c26}",
                "--test-files",
                "{no_c26}",
            ],
            r"lacks columns \['C26'\]",
            id="parquet_without_a_column",
        ),
        pytest.param(
            ["vocab", "--data", "criteo-tsv", "--files", "{absent}", "--out", "{empty}/v.json"],
            "no such file: .*absent.tsv",
            id="vocab_missing_file",
        ),
        pytest.param(
            ["vocab", "--data", "criteo-tsv", "--files", "{good}", "--out", "{absent}/v.json"],
            "--out .*: its directory does not exist",
            id="vocab_out_in_missing_dir",
        ),
        pytest.param(
            [
                "vocab",
                "--data",
                "criteo-tsv",
                "--files",
                "{good}",
                "{malformed}",
                "--out",
                "{empty}/v.json",
            ],
            r"malformed.tsv:21: malformed Criteo line \(label",
            id="vocab_malformed_line",
        ),
        pytest.param(
            ["vocab", "--data", "criteo-tsv", "--files", "{good}"],
            "required: --out",
            id="vocab_without_out",
        ),
        pytest.param(
            [
                "predict",
                "{empty}",
                "--data",
                "criteo-tsv",
                "--files",
                "{good}",
                "--out",
                "{empty}/p.csv",
            ],
            "holds no saved CAFE model",
            id="predict_without_a_model",
        ),
        pytest.param(
            ["predict", "{empty}", "--data", "criteo-tsv", "--out", "{empty}/p.csv"],
            "required: --files",
            id="predict_without_files",
        ),
        pytest.param(["inspect", "{empty}"], "holds no saved CAFE model", id="inspect_empty_dir"),
        pytest.param(["inspect", "{absent}"], "no such directory", id="inspect_missing_dir"),
        pytest.param(["bench", "nosuch"], "no benchmark 'nosuch'", id="unknown_benchmark"),
        pytest.param([], "required: COMMAND", id="no_command"),
    ],
)
def test_bad_arguments_fail_with_a_message(files, args, message, capsys):
    code = run_cli(*[a.format(**files) for a in args])
    err = capsys.readouterr().err
    assert code in (1, 2)
    assert "Traceback" not in err
    assert re.search(message, err), err


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "cafe-tf"
    assert script.exists(), "reinstall: pip install -e . --no-build-isolation"
    run = subprocess.run(
        [str(script), "train", "--epochs", "-1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert run.returncode == 2
    assert "argument --epochs: must be > 0" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("multi_level", [False, True])
def test_inspect_names_shared_hashed_tables_and_their_rows(multi_level):
    from cafe_tf.layers import CafeConfig, CafeEmbeddingCollection

    config = CafeConfig(
        embedding_dim=4,
        compression_ratio=10,
        share_hashed_tables=True,
        multi_level=multi_level,
        medium_share=0.3,
    )
    layer = CafeEmbeddingCollection({"a": 1000, "b": 500, "c": 300}, config)
    layer.build(None)
    shown = describe(layer, top=1)
    layout = layer.layout
    assert f"hashed tables {layout.hashed_table_rows:,} rows shared by 3 features" in shown
    assert f"({layout.hashed_table_rows * 16:,} B)" in shown
    if multi_level:
        assert f"medium level {layout.medium_table_rows:,} rows" in shown
