"""Readers for real Criteo files: exact parsing, missing values, malformed lines, Parquet."""

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from cafe_tf.data import KAGGLE_CARDINALITIES, MISSING_ID, CriteoParquet, CriteoTSV, criteo
from cafe_tf.data.criteo import CATEGORICAL_FIELDS, DENSE_FIELDS, parse_hex_ids

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

# tensorflow-io 0.37 reads Parquet with TensorFlow 2.16 only; pyarrow with every TensorFlow.
TFIO_PROBLEM = criteo._tensorflow_io_problem()
needs_tfio = pytest.mark.skipif(
    TFIO_PROBLEM is not None, reason=f"tensorflow_io cannot read Parquet here: {TFIO_PROBLEM}"
)
ENGINES = [
    pytest.param("pyarrow", id="pyarrow"),
    pytest.param("tensorflow_io", id="tensorflow_io", marks=needs_tfio),
]


def make_row(rng, label=None):
    """A random valid example: (label, ints with None = missing, hex strings with "" = missing)."""
    label = int(rng.integers(2)) if label is None else label
    ints = [None if rng.random() < 0.2 else int(rng.integers(-3, 10**6)) for _ in DENSE_FIELDS]
    cats = [
        "" if rng.random() < 0.2 else f"{int(rng.integers(2**32)):08x}" for _ in CATEGORICAL_FIELDS
    ]
    cats[0] = cats[0].upper()  # both cases occur in the wild
    return label, ints, cats


def tsv_line(row):
    label, ints, cats = row
    return "\t".join([str(label)] + ["" if v is None else str(v) for v in ints] + cats)


def expected(rows):
    """(dense, ids, label) the readers must produce for `rows`."""
    dense = np.array([[np.log1p(max(v or 0, 0)) for v in ints] for _, ints, _ in rows], np.float32)
    ids = np.array([[int(c, 16) if c else MISSING_ID for c in cats] for _, _, cats in rows])
    return dense, ids, np.array([label for label, _, _ in rows], np.float32)


def read_all(reader, batch_size=7):
    dense, ids, label, sizes = [], [], [], []
    for features, y in reader.dataset(batch_size):
        dense.append(features["dense"].numpy())
        ids.append(np.stack([features["sparse"][f].numpy() for f in CATEGORICAL_FIELDS], 1))
        label.append(y.numpy()[:, 0])
        sizes.append(len(y))
    return np.concatenate(dense), np.concatenate(ids), np.concatenate(label), sizes


def assert_rows(actual, rows):
    want = expected(rows)
    np.testing.assert_allclose(actual[0], want[0], rtol=1e-6)
    np.testing.assert_array_equal(actual[1], want[1])
    np.testing.assert_array_equal(actual[2], want[2])


@pytest.fixture
def rows():
    rng = np.random.default_rng(7)
    return [make_row(rng) for _ in range(30)]


def test_parse_hex_ids_is_exact():
    values = tf.constant([["68fd1e64", "FFFFFFFF"], ["00000000", ""]])
    np.testing.assert_array_equal(
        parse_hex_ids(values).numpy(), [[0x68FD1E64, 0xFFFFFFFF], [0, MISSING_ID]]
    )


def test_tsv_values_are_parsed_exactly(tmp_path, rows):
    path = tmp_path / "day_0.tsv"
    path.write_text("".join(tsv_line(r) + "\n" for r in rows))
    reader = CriteoTSV(str(path))
    assert reader.field_names == CATEGORICAL_FIELDS and reader.num_dense == 13
    assert reader.vocabulary_sizes == KAGGLE_CARDINALITIES
    *actual, sizes = read_all(reader)
    assert sizes == [7, 7, 7, 7, 2]
    assert_rows(actual, rows)
    features, label = next(iter(reader.dataset(4)))
    assert reader.dataset(4).element_spec == reader.element_spec()
    assert features["dense"].dtype == tf.float32 and label.shape == (4, 1)


def test_missing_and_negative_values(tmp_path):
    line = "\t".join(["0", "-5", ""] + ["0"] * 11 + [""] * 26)
    (tmp_path / "a.tsv").write_text(line + "\n")
    dense, ids, label, _ = read_all(CriteoTSV(str(tmp_path / "a.tsv")))
    np.testing.assert_array_equal(dense, np.zeros((1, 13)))  # negative clipped, missing -> 0
    np.testing.assert_array_equal(ids, np.full((1, 26), MISSING_ID))
    np.testing.assert_array_equal(label, [0.0])


def test_gzip_crlf_and_several_files_in_order(tmp_path, rows):
    with gzip.open(tmp_path / "day_0.tsv.gz", "wt") as f:
        f.write("".join(tsv_line(r) + "\n" for r in rows[:10]))
    (tmp_path / "day_1.tsv").write_bytes("".join(tsv_line(r) + "\r\n" for r in rows[10:]).encode())
    reader = CriteoTSV(
        [tmp_path / "day_0.tsv.gz", tmp_path / "day_1.tsv"],
        vocabulary_sizes={f: 1000 for f in CATEGORICAL_FIELDS},
    )
    assert reader.vocabulary_sizes["C3"] == 1000
    *actual, sizes = read_all(reader, batch_size=8)
    assert sizes == [8, 8, 8, 6]  # batches straddle the file boundary
    assert_rows(actual, rows)


MALFORMED = {
    "too few columns": (
        "\t".join(["1"] + ["1"] * 13 + ["00000000"] * 25),
        "expected 40 tab-separated columns, got 39",
    ),
    "too many columns": (
        "\t".join(["1"] + ["1"] * 13 + ["00000000"] * 27),
        "expected 40 tab-separated columns, got 41",
    ),
    "bad label": ("\t".join(["2"] + ["1"] * 13 + ["00000000"] * 26), "label is not 0 or 1"),
    "non-numeric integer": (
        "\t".join(["1", "1", "1.5"] + ["1"] * 11 + ["00000000"] * 26),
        r"column I2 is not an integer: \[1.5\]",
    ),
    "short hex": (
        "\t".join(["1"] + ["1"] * 13 + ["00000000"] * 4 + ["abc"] + ["00000000"] * 21),
        r"column C5 is not empty or 8 hex digits: \[abc\]",
    ),
    "non-hex": (
        "\t".join(["1"] + ["1"] * 13 + ["0000000g"] + ["00000000"] * 25),
        "column C1 is not empty or 8 hex digits",
    ),
    "blank line": ("", "expected 40 tab-separated columns, got 1"),
}


@pytest.mark.parametrize("problem", sorted(MALFORMED))
def test_malformed_line_raises_naming_file_line_and_problem(tmp_path, rows, problem):
    bad, message = MALFORMED[problem]
    path = tmp_path / "bad.tsv"
    lines = [tsv_line(rows[0]), tsv_line(rows[1]), bad, tsv_line(rows[2])]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=f"bad.tsv:3: malformed Criteo line .*{message}"
    ):
        read_all(CriteoTSV(str(path)))


def test_malformed_lines_are_skipped_and_counted(tmp_path, rows):
    lines = [tsv_line(r) for r in rows]
    bad = [bad for bad, _ in MALFORMED.values() if bad]  # a blank line inside a file is bad too
    for offset, line in enumerate(bad):
        lines.insert(3 * offset + 1, line)
    path = tmp_path / "mixed.tsv"
    path.write_text("\n".join(lines) + "\n")
    reader = CriteoTSV(str(path), on_error="skip")
    *actual, sizes = read_all(reader, batch_size=8)
    assert_rows(actual, rows)
    assert sizes == [8, 8, 8, 6]
    assert reader.skipped() == {str(path): len(bad)}


def test_skipping_keeps_full_batches_across_parse_blocks(tmp_path):
    rng = np.random.default_rng(1)
    rows = [make_row(rng) for _ in range(5000)]  # more than one 4096-line parse block
    lines = [tsv_line(r) for r in rows]
    lines.insert(10, "garbage")
    (tmp_path / "big.tsv").write_text("\n".join(lines) + "\n")
    reader = CriteoTSV(str(tmp_path / "big.tsv"), on_error="skip")
    *actual, sizes = read_all(reader, batch_size=1000)
    assert sizes == [1000] * 5 and reader.skipped() == {str(tmp_path / "big.tsv"): 1}
    assert_rows(actual, rows)


def test_on_error_is_validated(tmp_path):
    with pytest.raises(ValueError, match="on_error"):
        CriteoTSV(str(tmp_path / "x.tsv"), on_error="ignore")


def write_parquet(path, rows, hex_strings=True, statistics=True, **columns):
    label, ints, cats = zip(*rows)
    table = {"label": pa.array(label, pa.int64())}
    for i, field in enumerate(DENSE_FIELDS):  # missing integers as NaN, as pandas writes them
        table[field] = pa.array([np.nan if r[i] is None else float(r[i]) for r in ints])
    for i, field in enumerate(CATEGORICAL_FIELDS):
        values = [r[i] for r in cats]
        table[field] = (
            pa.array(values)
            if hex_strings
            else pa.array([int(v, 16) if v else MISSING_ID for v in values], pa.int64())
        )
    table.update(columns)
    pq.write_table(pa.table(table), path, row_group_size=8, write_statistics=statistics)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "hex_strings", [pytest.param(True, id="hex"), pytest.param(False, id="int_ids")]
)
def test_parquet_values_match_the_tsv_mapping(tmp_path, rows, hex_strings, engine):
    write_parquet(tmp_path / "a.parquet", rows[:20], hex_strings)
    write_parquet(tmp_path / "b.parquet", rows[20:], hex_strings)
    reader = CriteoParquet(
        [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")], engine=engine
    )
    assert reader.engine == engine
    *actual, sizes = read_all(reader, batch_size=7)
    assert sizes == [7, 7, 7, 7, 2]
    assert_rows(actual, rows)


@pytest.mark.parametrize("statistics", [True, False])
def test_parquet_rejects_nulls(tmp_path, rows, statistics):
    write_parquet(
        tmp_path / "nulls.parquet",
        rows[:3],
        statistics=statistics,
        C7=pa.array(["00000001", None, ""]),
    )
    with pytest.raises(ValueError, match="column C7 holds 1 null"):
        CriteoParquet(str(tmp_path / "nulls.parquet"))


def test_parquet_rejects_missing_columns(tmp_path, rows):
    write_parquet(tmp_path / "full.parquet", rows[:3])
    table = pq.read_table(tmp_path / "full.parquet").drop(["I4"])
    pq.write_table(table, tmp_path / "short.parquet")
    with pytest.raises(ValueError, match=r"lacks columns \['I4'\]"):
        CriteoParquet(str(tmp_path / "short.parquet"))


@pytest.mark.parametrize("engine", ENGINES)
def test_parquet_bad_values_raise_or_are_skipped(tmp_path, rows, engine):
    bad_hex = [c[4] for _, _, c in rows[:5]]
    bad_hex[3] = "xyz"
    write_parquet(tmp_path / "bad.parquet", rows[:5], C5=pa.array(bad_hex))
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="bad.parquet: row 4: malformed Criteo row .column C5"
    ):
        read_all(CriteoParquet(str(tmp_path / "bad.parquet"), engine=engine))
    reader = CriteoParquet(str(tmp_path / "bad.parquet"), on_error="skip", engine=engine)
    *actual, _ = read_all(reader)
    assert_rows(actual, rows[:3] + rows[4:5])
    assert list(reader.skipped().values()) == [1]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "column, value, message",
    [
        pytest.param("label", 2, "label is not 0 or 1", id="label_2"),
        pytest.param("I3", np.inf, "column I3 is inf or beyond int64", id="I3_inf"),
        pytest.param("I5", 2.0**63, "column I5 is inf or beyond int64", id="I5_2pow63"),
    ],
)
def test_parquet_bad_label_or_integer_raises_or_is_skipped(
    tmp_path, rows, column, value, message, engine
):
    path = tmp_path / "bad.parquet"
    if column == "label":
        labels = [r[0] for r in rows[:5]]
        labels[2] = value
        write_parquet(path, rows[:5], label=pa.array(labels, pa.int64()))
    else:
        index = DENSE_FIELDS.index(column)
        values = [np.nan if r[1][index] is None else float(r[1][index]) for r in rows[:5]]
        values[2] = value
        write_parquet(path, rows[:5], **{column: pa.array(values)})
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"bad.parquet: row 3: .*{message}"):
        read_all(CriteoParquet(str(path), engine=engine))
    reader = CriteoParquet(str(path), on_error="skip", engine=engine)
    *actual, _ = read_all(reader)
    assert_rows(actual, rows[:2] + rows[3:5])
    assert list(reader.skipped().values()) == [1]


@needs_tfio
def test_parquet_engines_give_equal_batches_and_skip_counts(tmp_path, monkeypatch):
    monkeypatch.setattr(criteo, "_LINES_PER_BLOCK", 64)  # several blocks from few rows
    rng = np.random.default_rng(3)
    rows = [make_row(rng) for _ in range(300)]
    labels = [r[0] for r in rows]
    labels[10] = labels[250] = 7  # two bad rows, in different blocks and files
    paths = [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")]
    write_parquet(paths[0], rows[:200], label=pa.array(labels[:200], pa.int64()))
    write_parquet(paths[1], rows[200:], label=pa.array(labels[200:], pa.int64()))
    readers = {
        engine: CriteoParquet(paths, on_error="skip", engine=engine)
        for engine in ("tensorflow_io", "pyarrow")
    }
    (*batches_io, sizes_io), (*batches_pa, sizes_pa) = (read_all(r, 100) for r in readers.values())
    assert sizes_io == sizes_pa == [100, 100, 98]
    for from_io, from_pa in zip(batches_io, batches_pa):
        np.testing.assert_array_equal(from_io, from_pa)
    assert [r.skipped() for r in readers.values()] == [{paths[0]: 1, paths[1]: 1}] * 2


@pytest.fixture
def without_tensorflow_io(monkeypatch):
    """As where tensorflow-io is not installed (the TensorFlow 2.21 CI environment)."""
    monkeypatch.setitem(sys.modules, "tensorflow_io", None)


def test_auto_engine_falls_back_to_pyarrow(tmp_path, rows, without_tensorflow_io):
    write_parquet(tmp_path / "a.parquet", rows)
    reader = CriteoParquet(str(tmp_path / "a.parquet"))
    assert reader.engine == "pyarrow"
    *actual, _ = read_all(reader)
    assert_rows(actual, rows)


def test_tensorflow_io_engine_fails_at_construction_where_it_cannot_run(
    tmp_path, rows, without_tensorflow_io
):
    write_parquet(tmp_path / "a.parquet", rows)
    with pytest.raises(
        ValueError,
        match=r"compiled ops for TensorFlow 2.16 only .*"
        r"engine='pyarrow'",
    ):
        CriteoParquet(str(tmp_path / "a.parquet"), engine="tensorflow_io")


@needs_tfio
def test_auto_engine_takes_tensorflow_io_where_it_loads(tmp_path, rows):
    write_parquet(tmp_path / "a.parquet", rows)
    assert CriteoParquet(str(tmp_path / "a.parquet")).engine == "tensorflow_io"


def test_parquet_rejects_bad_engines_and_column_types(tmp_path, rows):
    write_parquet(tmp_path / "a.parquet", rows[:3])
    with pytest.raises(ValueError, match="engine must be one of"):
        CriteoParquet(str(tmp_path / "a.parquet"), engine="pandas")
    write_parquet(
        tmp_path / "dates.parquet", rows[:3], I2=pa.array([b"0", b"1", b"2"], pa.binary())
    )
    with pytest.raises(ValueError, match=r"unsupported types \{'I2': 'binary'\}"):
        CriteoParquet(str(tmp_path / "dates.parquet"))
    write_parquet(tmp_path / "text_ints.parquet", rows[:3], I7=pa.array(["1", "x", ""]))
    with pytest.raises(ValueError, match=r"text_ints.parquet: columns \['I7'\] hold strings"):
        CriteoParquet(str(tmp_path / "text_ints.parquet"))
    write_parquet(tmp_path / "int_ids.parquet", rows[3:6], hex_strings=False)
    with pytest.raises(ValueError, match=r"int_ids.parquet: columns \['C1', .* have other types"):
        CriteoParquet([str(tmp_path / "a.parquet"), str(tmp_path / "int_ids.parquet")])


@pytest.mark.parametrize("source", [pytest.param("tsv", id="tsv"), *ENGINES])
def test_skips_are_counted_per_file_once_however_often_read(tmp_path, monkeypatch, source):
    monkeypatch.setattr(criteo, "_LINES_PER_BLOCK", 16)  # several blocks per file
    rng = np.random.default_rng(5)
    rows = [make_row(rng) for _ in range(100)]
    bad = {3, 20, 47, 61, 62}  # in the middle of the files: 2 in the first, 3 in the second
    labels = [7 if i in bad else r[0] for i, r in enumerate(rows)]
    rows = [(label, ints, cats) for label, (_, ints, cats) in zip(labels, rows)]
    paths = [str(tmp_path / f"day_{d}.{source}") for d in range(2)]
    for path, part in zip(paths, (rows[:40], rows[40:])):
        if source == "tsv":
            Path(path).write_text("".join(tsv_line(r) + "\n" for r in part))
        else:
            write_parquet(path, part, label=pa.array([r[0] for r in part], pa.int64()))
    reader = (
        CriteoTSV(paths, on_error="skip")
        if source == "tsv"
        else CriteoParquet(paths, on_error="skip", engine=source)
    )
    assert reader.skipped() == {paths[0]: 0, paths[1]: 0}
    good = [r for i, r in enumerate(rows) if i not in bad]
    for _ in range(2):  # two epochs
        *actual, _ = read_all(reader, batch_size=32)
        assert_rows(actual, good)
        assert reader.skipped() == {paths[0]: 2, paths[1]: 3}
