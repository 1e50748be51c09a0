"""Readers for real Criteo click logs: the raw TSV format and Parquet.

TSV format (Criteo Kaggle `train.txt`, Criteo Terabyte `day_N`): one example per line,
40 tab-separated columns: the 0/1 label, 13 integer columns I1..I13, 26 categorical
columns C1..C26 holding 8-digit hex strings. Any column but the label may be empty.

How values are mapped (the same for TSV and Parquet):

- categorical: the hex string is parsed exactly to its int64 value (0 .. 2**32 - 1); an empty
  (missing) value becomes `MISSING_ID` = 2**32, one value above every hex id, so "missing" is
  a feature value of its own in every field and never collides with a real id;
- integer: negative values are clipped to 0, missing values become 0, then `log1p` is applied
  (as DLRM does); the result is float32.

Ids are the raw 32-bit hashes, so they do NOT lie in `[0, vocabulary_size)`: index embedding
tables through a hash (or a remapping) rather than directly.

Malformed lines (wrong column count, label other than 0/1, non-integer or out-of-range integer
column, categorical value that is not 8 hex digits) are never turned into a row silently:
`on_error="raise"` (default) stops with an `InvalidArgumentError` whose message names the
file, the line number, the problem and the line; `on_error="skip"` drops the line and counts
it per file (`skipped()`). Either way the dense features are finite: integers become finite
floats, and Parquet's NaN means missing.
"""

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, get_args

import numpy as np
import tensorflow as tf

from cafe_tf.data.batch import CTRData, pack_batch

DENSE_FIELDS = [f"I{i}" for i in range(1, 14)]
CATEGORICAL_FIELDS = [f"C{i}" for i in range(1, 27)]
LABEL_COLUMN = "label"
NUM_COLUMNS = 1 + len(DENSE_FIELDS) + len(CATEGORICAL_FIELDS)

# Distinct values per field of Criteo Kaggle (DLRM's counts, no frequency threshold).
KAGGLE_CARDINALITIES = dict(
    zip(
        CATEGORICAL_FIELDS,
        [
            1460,
            583,
            10131227,
            2202608,
            305,
            24,
            12517,
            633,
            3,
            93145,
            5683,
            8351593,
            3194,
            27,
            14992,
            5461306,
            10,
            5652,
            2173,
            4,
            7046547,
            18,
            15,
            286181,
            105,
            142572,
        ],
    )
)

MISSING_ID = 1 << 32

_HEX_DIGITS = 8
_INT_PATTERN = "-?[0-9]{1,18}"  # 18 digits always fit in int64, so parsing cannot overflow
_HEX_PATTERN = f"[0-9a-fA-F]{{{_HEX_DIGITS}}}"
_LINES_PER_BLOCK = 4096  # lines (rows) parsed together: vectorised string ops, then rebatched
# Skipped lines are recorded per block under the key (file index << _LINE_BITS) + the number of
# its first line.
_LINE_BITS = 40
ErrorPolicy = Literal["raise", "skip"]
ParquetEngine = Literal["auto", "tensorflow_io", "pyarrow"]
PathLike = str | os.PathLike


def _check_on_error(on_error: ErrorPolicy) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f'on_error must be "raise" or "skip", got {on_error!r}')


def _as_file_list(files: PathLike | Sequence[PathLike]) -> list:
    files = [files] if isinstance(files, (str, os.PathLike)) else files
    files = [os.fspath(f) for f in files]
    if not files:
        raise ValueError("no input files given")
    return files


def parse_hex_ids(values: tf.Tensor) -> tf.Tensor:
    """Exact int64 value of 8-digit hex strings; empty strings become `MISSING_ID`.

    Args:
        values: string tensor of any shape, each element empty or 8 hex digits (either case).
            Other strings give unspecified ids: validate them first (`is_valid_hex`).

    Returns:
        int64 tensor of the same shape.

    Example:
        >>> parse_hex_ids(tf.constant(["68fd1e64", ""])).numpy()
        array([1761418852, 4294967296])
    """
    # The 8 characters, read big-endian as one uint64, are converted all at once (SWAR), about
    # 10x faster than working per character. decode_raw zero-pads "", which is replaced below.
    chars = tf.io.decode_raw(values, tf.int64, fixed_length=_HEX_DIGITS, little_endian=False)
    x = tf.bitcast(chars[..., 0], tf.uint64)
    and_, or_, shift = tf.bitwise.bitwise_and, tf.bitwise.bitwise_or, tf.bitwise.right_shift

    def u64(value):
        return tf.constant(value, tf.uint64)

    # per byte: low nibble, plus 9 for letters (bit 6 set): '0'-'9' -> 0-9, 'a'-'f' -> 10-15
    letters = and_(shift(x, u64(6)), u64(0x0101010101010101))
    nibbles = and_(x, u64(0x0F0F0F0F0F0F0F0F)) + letters * u64(9)
    # squeeze the 8 nibbles together: pairs into bytes, bytes into 16 bits, then into 32 bits
    packed = and_(or_(nibbles, shift(nibbles, u64(4))), u64(0x00FF00FF00FF00FF))
    packed = and_(or_(packed, shift(packed, u64(8))), u64(0x0000FFFF0000FFFF))
    packed = and_(or_(packed, shift(packed, u64(16))), u64(0x00000000FFFFFFFF))
    ids = tf.bitcast(packed, tf.int64)
    return tf.where(tf.strings.length(values) == 0, tf.constant(MISSING_ID, tf.int64), ids)


def is_valid_hex(values: tf.Tensor) -> tf.Tensor:
    """Whether each string is empty (missing) or exactly 8 hex digits."""
    return tf.strings.regex_full_match(values, f"({_HEX_PATTERN})?")


def transform_integers(values: tf.Tensor) -> tf.Tensor:
    """DLRM's dense transform: `log1p(max(x, 0))` as float32 (missing values are given as 0)."""
    return tf.math.log1p(tf.cast(tf.maximum(values, 0), tf.float32))


def _numbered_blocks(lines: tf.data.Dataset, path, file_index) -> tf.data.Dataset:
    """The blocks of one file's lines (rows): (path, file index, first line's number, lines)."""
    return (
        lines.batch(_LINES_PER_BLOCK)
        .enumerate()
        .map(lambda index, block: (path, file_index, index * _LINES_PER_BLOCK + 1, block))
    )


class _CriteoFiles(CTRData):
    """What both readers share: Criteo's fields, the files in order and the error policy.

    Both read each file in blocks of `_LINES_PER_BLOCK` lines (rows), given to `_parse_block`
    with the file's path and index and the number of the block's first line (from 1).
    """

    def __init__(
        self,
        files: PathLike | Sequence[PathLike],
        vocabulary_sizes: Mapping[str, int] | None,
        on_error: ErrorPolicy,
    ):
        _check_on_error(on_error)
        super().__init__(
            CATEGORICAL_FIELDS, vocabulary_sizes or KAGGLE_CARDINALITIES, len(DENSE_FIELDS)
        )
        self.files = _as_file_list(files)
        self.on_error = on_error
        # Block key -> lines of the block skipped. A block read again (the next epoch)
        # overwrites its entry, so the counts do not grow with the passes over the files.
        self._skipped = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, 0)

    def skipped(self) -> dict[str, int]:
        """Malformed lines (rows) skipped with `on_error="skip"`, per file.

        Each line counts once however often it was read (epochs, or several datasets of
        this reader). The counts grow as the datasets are iterated: read them after.

        Returns:
            {file: lines skipped} for every file, 0 for a file without skips.
        """
        keys, counts = self._skipped.export()
        totals = np.bincount(
            keys.numpy() >> _LINE_BITS, weights=counts.numpy(), minlength=len(self.files)
        )
        result = dict.fromkeys(self.files, 0)
        for path, count in zip(self.files, totals):
            result[path] += int(count)
        return result

    def _enforce(
        self,
        valid: tf.Tensor,
        file_index: tf.Tensor,
        first_number: tf.Tensor,
        describe: Callable[[tf.Tensor], tf.Tensor],
    ) -> tf.Operation:
        """An op that fails naming the first invalid line of a block (`on_error="raise"`;
        `describe(its index in the block)` says where and why) or records the block's
        invalid lines (`"skip"`)."""
        if self.on_error == "raise":
            first = tf.argmin(tf.cast(valid, tf.int32))  # the first invalid line, if any
            return tf.debugging.Assert(tf.reduce_all(valid), [describe(first)], summarize=1)
        count = tf.reduce_sum(tf.cast(~valid, tf.int64))
        key = tf.bitwise.left_shift(tf.cast(file_index, tf.int64), _LINE_BITS) + first_number
        keys = tf.boolean_mask(key[None], count[None] > 0)  # only blocks with skips
        return self._skipped.insert(keys, tf.fill(tf.shape(keys), count))


class CriteoTSV(_CriteoFiles):
    """Streams Criteo TSV files (plain or gzip) as cafe_tf batches, in file and line order.

    Args:
        files: one path or a list of paths, read in the given order (put days in time order).
            Files ending in `.gz` are decompressed on the fly.
        vocabulary_sizes: field -> distinct values, used only for memory budgets (the files do
            not tell); defaults to Criteo Kaggle's `KAGGLE_CARDINALITIES`.
        on_error: `"raise"` or `"skip"`, see the module docstring; `skipped()` counts the
            lines skipped per file.

    Example:
        >>> reader = CriteoTSV(["day_0.gz", "day_1.gz"], on_error="skip")  # doctest: +SKIP
        >>> model.fit(reader.dataset(batch_size=128))  # doctest: +SKIP
        >>> reader.skipped()  # doctest: +SKIP
        {'day_0.gz': 0, 'day_1.gz': 2}
    """

    def __init__(
        self,
        files: PathLike | Sequence[PathLike],
        vocabulary_sizes: Mapping[str, int] | None = None,
        on_error: ErrorPolicy = "raise",
    ):
        super().__init__(files, vocabulary_sizes, on_error)

    def dataset(self, batch_size: int) -> tf.data.Dataset:
        """All examples of `files`, in order, as `(features, label)` batches.

        Args:
            batch_size: rows per batch; only the very last batch may be smaller.

        Returns:
            A `tf.data.Dataset` in the batch format of `cafe_tf.data.batch`.
        """
        compressions = ["GZIP" if f.endswith(".gz") else "" for f in self.files]

        def blocks(path, compression, file_index):
            """(path, file index, number of the block's first line, lines): per-block, not
            per-line, work."""
            lines = tf.data.TextLineDataset(path, compression_type=compression)
            return _numbered_blocks(lines, path, file_index)

        names = self.field_names
        return (
            tf.data.Dataset.from_tensor_slices(
                (self.files, compressions, tf.range(len(self.files), dtype=tf.int64))
            )
            .flat_map(blocks)
            .map(self._parse_block, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .rebatch(batch_size)
            .map(
                lambda d, i, y: pack_batch(d, i, y, names),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
            .prefetch(tf.data.AUTOTUNE)
        )

    def _parse_block(self, path, file_index, first_number, lines):
        """Parses a block of lines of `path` to (dense, ids, label), enforcing `on_error`."""
        lines = tf.strings.regex_replace(lines, "\r$", "")  # tolerate CRLF files
        columns = tf.strings.split(lines, "\t")
        counts = columns.row_lengths()
        cells = columns.to_tensor(default_value="", shape=[None, NUM_COLUMNS])
        first_cat = 1 + len(DENSE_FIELDS)
        label, ints, cats = cells[:, 0], cells[:, 1:first_cat], cells[:, first_cat:]

        checks = {
            "count": tf.equal(counts, NUM_COLUMNS),
            "label": tf.strings.regex_full_match(label, "[01]"),
            "ints": tf.strings.regex_full_match(ints, f"({_INT_PATTERN})?"),
            "cats": is_valid_hex(cats),
        }
        valid = (
            checks["count"]
            & checks["label"]
            & tf.reduce_all(checks["ints"], 1)
            & tf.reduce_all(checks["cats"], 1)
        )

        def describe(first):
            problem = _describe_problem(
                counts[first],
                label[first],
                ints[first],
                cats[first],
                {k: v[first] for k, v in checks.items()},
            )
            return tf.strings.join(
                [
                    path,
                    ":",
                    tf.strings.as_string(first_number + first),
                    ": malformed Criteo line (",
                    problem,
                    "): ",
                    tf.strings.substr(lines[first], 0, 200),
                ]
            )

        with tf.control_dependencies([self._enforce(valid, file_index, first_number, describe)]):
            label, ints, cats = (tf.boolean_mask(t, valid) for t in (label, ints, cats))
        int_values = tf.strings.to_number(tf.where(ints == "", "0", ints), tf.int64)
        return (
            transform_integers(int_values),
            parse_hex_ids(cats),
            tf.strings.to_number(label, tf.float32),
        )


def _describe_problem(count, label, ints, cats, ok):
    """A short text naming the first problem of one line (meaningless for a valid line)."""

    def first_bad(column_ok, names, values, what):
        index = tf.argmin(tf.cast(column_ok, tf.int32))
        return tf.strings.join(
            [
                "column ",
                tf.gather(names, index),
                " is not ",
                what,
                ": [",
                tf.strings.substr(values[index], 0, 40),
                "]",
            ]
        )

    return tf.where(
        ~ok["count"],
        tf.strings.join(
            [f"expected {NUM_COLUMNS} tab-separated columns, got ", tf.strings.as_string(count)]
        ),
        tf.where(
            ~ok["label"],
            tf.strings.join(["label is not 0 or 1: [", tf.strings.substr(label, 0, 40), "]"]),
            tf.where(
                ~tf.reduce_all(ok["ints"]),
                first_bad(ok["ints"], DENSE_FIELDS, ints, "an integer"),
                first_bad(
                    ok["cats"], CATEGORICAL_FIELDS, cats, f"empty or {_HEX_DIGITS} hex digits"
                ),
            ),
        ),
    )


class CriteoParquet(_CriteoFiles):
    """Streams Criteo examples from Parquet files, through pyarrow or `tensorflow_io`.

    Expected columns: `label` (integer or float, 0/1); `I1..I13` (integers, or floats, which
    are floored, NaN meaning missing; then the transform of the module docstring applies);
    `C1..C26` (integer ids used as they are, or 8-digit hex strings parsed like the TSV
    reader, "" meaning missing).

    Two engines read the files; both feed the same parsing step, so they give the same
    batches, the same errors and the same skip counts:

    - `"tensorflow_io"` reads in-graph (no Python in the input pipeline). tensorflow-io
      0.37 has compiled ops for TensorFlow 2.16 only (`pip install cafe_tf[parquet-tfio]`).
    - `"pyarrow"` reads with pyarrow through `tf.data.Dataset.from_generator`, with every
      supported TensorFlow (`pip install cafe_tf[parquet]`). Like any generator input, it
      runs Python in the input pipeline and cannot be serialised (tf.data service).
    - `"auto"` (default) takes tensorflow_io where its ops load, else pyarrow.

    Parquet nulls are rejected when the reader is built: tensorflow_io 0.37 silently shifts
    the following values of a column with nulls into the wrong rows, and both engines keep
    one policy. Write missing integers as 0 or NaN and missing categoricals as "" (or an id
    of your own). The check reads the files' footers (and a column itself only where the
    writer kept no statistics) with pyarrow, which this reader therefore always needs.

    Args:
        files: one path or a list of paths, read in the given order; all with the same
            column types.
        vocabulary_sizes: as for `CriteoTSV`.
        on_error: `"raise"` or `"skip"`; applies to labels other than 0/1, to integers that
            are inf or beyond int64 and to categorical strings that are not empty or 8 hex
            digits. `skipped()` counts the rows skipped per file.
        engine: `"auto"`, `"tensorflow_io"` or `"pyarrow"`, see above.

    Attributes:
        engine: the engine in use, `"tensorflow_io"` or `"pyarrow"`.

    Raises:
        ValueError: a file lacks a column, holds a null, has a column type other than
            integer, float or string, a string label or I column, or differs in types from
            the first file;
            `engine="tensorflow_io"` where tensorflow_io cannot read Parquet (the message
            says which TensorFlow it supports); an unknown engine.
        ImportError: pyarrow is not installed.

    Example:
        >>> reader = CriteoParquet("criteo_day_6.parquet")  # doctest: +SKIP
        >>> test = reader.dataset(batch_size=4096)  # doctest: +SKIP
    """

    def __init__(
        self,
        files: PathLike | Sequence[PathLike],
        vocabulary_sizes: Mapping[str, int] | None = None,
        on_error: ErrorPolicy = "raise",
        engine: ParquetEngine = "auto",
    ):
        super().__init__(files, vocabulary_sizes, on_error)
        self._column_types = _check_parquet_files(self.files)
        self.engine = _choose_engine(engine)

    def dataset(self, batch_size: int) -> tf.data.Dataset:
        """All rows of `files`, in order, as `(features, label)` batches.

        Args:
            batch_size: rows per batch; only the very last batch may be smaller.

        Returns:
            A `tf.data.Dataset` in the batch format of `cafe_tf.data.batch`.
        """
        blocks = (
            self._tensorflow_io_blocks()
            if self.engine == "tensorflow_io"
            else self._pyarrow_blocks()
        )
        names = self.field_names
        return (
            blocks.map(self._parse_block, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .rebatch(batch_size)
            .map(
                lambda d, i, y: pack_batch(d, i, y, names),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
            .prefetch(tf.data.AUTOTUNE)
        )

    def _tensorflow_io_blocks(self) -> tf.data.Dataset:
        """(path, file index, number of the first row, {column: values}) blocks, read by
        tensorflow_io."""
        import tensorflow_io as tfio  # imported here: it is slow to load and only Parquet needs it

        streams = [
            _numbered_blocks(
                tfio.IODataset.from_parquet(path, columns=_PARQUET_COLUMNS), path, index
            )
            for index, path in enumerate(self.files)
        ]
        stream = streams[0]
        for more in streams[1:]:
            stream = stream.concatenate(more)
        return stream

    def _pyarrow_blocks(self) -> tf.data.Dataset:
        """The same blocks as `_tensorflow_io_blocks`, read by pyarrow."""
        import pyarrow.parquet as pq

        files, types = self.files, self._column_types

        def blocks():
            for index, path in enumerate(files):
                first = 1
                for batch in pq.ParquetFile(path).iter_batches(
                    _LINES_PER_BLOCK, columns=_PARQUET_COLUMNS
                ):
                    yield (
                        path,
                        index,
                        first,
                        {c: _column_values(batch.column(c), types[c]) for c in _PARQUET_COLUMNS},
                    )
                    first += batch.num_rows

        block = (
            tf.TensorSpec([], tf.string),
            tf.TensorSpec([], tf.int64),
            tf.TensorSpec([], tf.int64),
        )
        columns = {c: tf.TensorSpec([None], types[c]) for c in _PARQUET_COLUMNS}
        return tf.data.Dataset.from_generator(blocks, output_signature=(*block, columns))

    def _parse_block(self, path, file_index, first_number, row):
        """Converts a block of rows to (dense, ids, label), enforcing `on_error`."""
        # tensorflow_io keys the columns by name, as bytes or str depending on the version.
        row = {k.decode() if isinstance(k, bytes) else k: v for k, v in row.items()}
        label = tf.cast(row[LABEL_COLUMN], tf.float32)
        ints = tf.stack([tf.cast(row[f], tf.float64) for f in DENSE_FIELDS], axis=1)
        ints = tf.where(tf.math.is_nan(ints), tf.zeros_like(ints), ints)  # missing
        # inf, or beyond int64: no integer count (casting them is undefined).
        finite = tf.math.is_finite(ints) & (tf.abs(ints) < 2.0**63)
        dense_ok = tf.reduce_all(finite, axis=1)
        ints = tf.where(finite, ints, tf.zeros_like(ints))
        dense = transform_integers(tf.cast(tf.floor(ints), tf.int64))

        ids, hex_ok = [], []
        for f in CATEGORICAL_FIELDS:
            values = row[f]
            is_text = values.dtype == tf.string
            ids.append(parse_hex_ids(values) if is_text else tf.cast(values, tf.int64))
            hex_ok.append(is_valid_hex(values) if is_text else tf.ones_like(values, tf.bool))
        ids, hex_ok = tf.stack(ids, axis=1), tf.stack(hex_ok, axis=1)
        label_ok = (label == 0) | (label == 1)
        valid = label_ok & dense_ok & tf.reduce_all(hex_ok, axis=1)

        def describe(first):
            bad_field = tf.gather(CATEGORICAL_FIELDS, tf.argmin(tf.cast(hex_ok[first], tf.int32)))
            bad_dense = tf.gather(DENSE_FIELDS, tf.argmin(tf.cast(finite[first], tf.int32)))
            problem = tf.where(
                ~label_ok[first],
                "label is not 0 or 1",
                tf.where(
                    ~dense_ok[first],
                    tf.strings.join(["column ", bad_dense, " is inf or beyond int64"]),
                    tf.strings.join(["column ", bad_field, " is not empty or 8 hex digits"]),
                ),
            )
            return tf.strings.join(
                [
                    path,
                    ": row ",
                    tf.strings.as_string(first_number + first),
                    ": malformed Criteo row (",
                    problem,
                    ")",
                ]
            )

        with tf.control_dependencies([self._enforce(valid, file_index, first_number, describe)]):
            return tuple(tf.boolean_mask(t, valid) for t in (dense, ids, label))


_PARQUET_COLUMNS = [LABEL_COLUMN] + DENSE_FIELDS + CATEGORICAL_FIELDS
_ENGINES = get_args(ParquetEngine)


def _tensorflow_io_problem() -> str | None:
    """Why tensorflow_io cannot read Parquet in this TensorFlow, or None if it can."""
    try:
        import tensorflow_io  # noqa: F401
        from tensorflow_io.python.ops import core_ops

        # Loads tensorflow_io's compiled ops: `import tensorflow_io` succeeds even where
        # they were built for another TensorFlow; this fails there (undefined symbols).
        core_ops.io_parquet_readable_info  # noqa: B018
    except Exception as err:  # any failure means this engine cannot run here
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return None


def _choose_engine(engine: str) -> str:
    """The engine to use for `engine` ("auto" resolved), or ValueError."""
    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {_ENGINES}, got {engine!r}")
    if engine == "pyarrow":
        return engine
    problem = _tensorflow_io_problem()
    if problem is None:
        return "tensorflow_io"
    if engine == "auto":
        return "pyarrow"
    raise ValueError(
        f"CriteoParquet(engine='tensorflow_io') cannot run with TensorFlow {tf.__version__}: "
        f"tensorflow-io 0.37 has compiled ops for TensorFlow 2.16 only ({problem}). Use "
        "engine='pyarrow' (or 'auto'), which reads the same batches with any TensorFlow."
    )


def _tf_dtype(arrow_type) -> tf.DType | None:
    """The dtype a Parquet column of `arrow_type` is read as, or None if unsupported."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type):
        return tf.int64
    if pa.types.is_floating(arrow_type):
        return tf.float64
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return tf.string
    return None


def _column_values(column, dtype: tf.DType) -> np.ndarray:
    """A pyarrow column (nulls already rejected) as a numpy array of `dtype`."""
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    values = column.to_numpy(zero_copy_only=False)
    return values if dtype == tf.string else values.astype(dtype.as_numpy_dtype)


def _check_parquet_files(files: Sequence[str]) -> dict:
    """Column -> tf.DType of the files; ValueError for a missing, null or unsupported
    column, or types that differ between files."""
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ImportError(
            "CriteoParquet needs pyarrow: `pip install cafe_tf[parquet]` (or `pip install pyarrow`)"
        ) from err
    types = None
    for path in files:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
        missing = [c for c in _PARQUET_COLUMNS if c not in schema.names]
        if missing:
            raise ValueError(f"{path}: Parquet file lacks columns {missing}")
        these = {c: _tf_dtype(schema.field(c).type) for c in _PARQUET_COLUMNS}
        unsupported = {c: str(schema.field(c).type) for c, t in these.items() if t is None}
        if unsupported:
            raise ValueError(
                f"{path}: columns of unsupported types {unsupported}; use "
                "integer, float or string columns"
            )
        text = [c for c in [LABEL_COLUMN] + DENSE_FIELDS if these[c] == tf.string]
        if text:
            raise ValueError(
                f"{path}: columns {text} hold strings; the label and I1..I13 must "
                "be integer or float columns (NaN for a missing integer)"
            )
        if types is not None and these != types:
            differ = sorted(c for c in _PARQUET_COLUMNS if these[c] != types[c])
            raise ValueError(f"{path}: columns {differ} have other types than in {files[0]}")
        types = these
        _check_no_nulls(path, parquet)
    return types


def _check_no_nulls(path: str, parquet) -> None:
    """Raises ValueError if any column of `parquet` holds a null."""
    names = parquet.schema_arrow.names
    metadata = parquet.metadata
    for group in range(metadata.num_row_groups):
        for column in _PARQUET_COLUMNS:
            chunk = metadata.row_group(group).column(names.index(column))
            stats = chunk.statistics
            if stats is not None and stats.has_null_count:
                nulls = stats.null_count
            else:  # the writer kept no statistics: count the nulls of this chunk itself
                nulls = parquet.read_row_group(group, columns=[column]).column(0).null_count
            if nulls:
                raise ValueError(
                    f"{path}: column {column} holds {nulls} null(s) in row group {group}; "
                    "tensorflow_io would misplace the following values, so neither engine "
                    'takes nulls: fill them first (0 or NaN for I columns, "" for C columns)'
                )
