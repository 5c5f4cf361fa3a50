"""Writers: one per destination format, each streaming record batches (Python columns or Arrow tables) to a
binary handle, with file and network writes and Parquet encoding on a background thread."""

from __future__ import annotations

import array
import csv
import io
import itertools
import operator
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import IO, Any

import msgspec

from airflow_provider_video_actions.errors import VideoActionsValueError
from airflow_provider_video_actions.predictions import Columns

WRITER_FORMATS = (".jsonl", ".csv", ".parquet")
CONTENT_TYPES = {".jsonl": "application/jsonl", ".csv": "text/csv", ".parquet": "application/vnd.apache.parquet"}
#: Rows per Parquet row group: small enough that a group gathered and one being written stay ~10 MB each.
PARQUET_ROW_GROUP = 32_768
#: Parquet columns worth a dictionary (few distinct values); trying one on every column cost ~20% of the write.
DICTIONARY_COLUMNS = ("label", "label_id")
#: A CSV cell starting with one of these is read as a formula by spreadsheets (OWASP CSV injection):
#: such text cells are written with a leading ``'``.
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(values: list[Any]) -> list[Any]:
    """A text column for CSV: None as an empty cell, formula-like text escaped with a leading ``'``."""
    return ["" if v is None else "'" + v if v.startswith(CSV_FORMULA_STARTS) else v for v in values]


#: How long jemalloc keeps freed pages during a parse.
ARROW_DECAY_MS = 100


@contextmanager
def compact_arrow_memory() -> Iterator[None]:
    """Arrow allocations from jemalloc, returning freed pages at once, for the parse's duration.

    Measured on 100 MB of output: with pyarrow's default (mimalloc) the process kept ~130 MB more RSS than Arrow
    ever held (31 MB); jemalloc returning pages after :data:`ARROW_DECAY_MS` kept ~50 MB less (0 ms: ~10 MB less
    again, for ~20% more CPU). Without pyarrow or jemalloc, nothing changes.
    """
    try:
        import pyarrow as pa

        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(ARROW_DECAY_MS)
    except (ImportError, NotImplementedError):
        yield
        return
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


class _OneAhead:
    """Runs writes on one background thread, one at a time and at most one behind the caller.

    File and network writes, and Parquet's encoding and compression, release the GIL: they overlap
    with decoding the next chunk, while at most one batch waits in memory.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="video-actions-writer")
        self._pending: Future[Any] | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the background once the previous write is done (raising its error)."""
        self.wait()
        self._pending = self._executor.submit(fn, *args)

    def wait(self) -> None:
        """Wait for the write in flight, raising its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def stop(self) -> None:
        """Let the write in flight end and the thread go, without raising (for an exception's unwinding)."""
        self._executor.shutdown(wait=True)


class RecordWriter:
    """Streams records of one type, given as columns, to a binary handle as JSONL, CSV or Parquet.

    JSONL and Parquet writes go through a background thread; call :meth:`stop` before the handle
    closes when the writer is abandoned half way.
    """

    def __init__(self, handle: IO[bytes], fmt: str, record_type: type[msgspec.Struct]) -> None:
        if fmt not in WRITER_FORMATS:
            raise VideoActionsValueError(f"unknown format {fmt!r}; use one of {', '.join(WRITER_FORMATS)}.")
        self._handle, self._fmt, self._type = handle, fmt, record_type
        self._encoder = msgspec.json.Encoder()
        self._io = _OneAhead()
        if fmt == ".csv":
            self._text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=True)
            self._csv = csv.writer(self._text)
            self._csv.writerow(record_type.__struct_fields__)
            self._csv_text_columns = {i for i, (_, text) in enumerate(_annotations(record_type)) if "str" in text}
        elif fmt == ".parquet":
            self._parquet = _ParquetColumns(handle, record_type, self._io)

    def write(self, columns: Columns) -> None:
        """Write a batch of records (Parquet gathers them into row groups)."""
        if not columns[0]:
            return
        if self._fmt == ".jsonl":
            self._io.submit(self._handle.write, self._encoder.encode_lines(list(map(self._type, *columns))))
        elif self._fmt == ".csv":
            cells = [
                _csv_text(c) if i in self._csv_text_columns else ["" if v is None else v for v in c] if None in c else c
                for i, c in enumerate(columns)
            ]
            self._csv.writerows(zip(*cells, strict=True))
        else:
            self._parquet.write(columns)

    def write_table(self, table: Any) -> None:
        """Write a batch of records given as an Arrow table with the record type's schema."""
        if self._fmt == ".parquet":
            self._parquet.write_table(table)
        elif table.num_rows:
            self.write(tuple(column.to_pylist() for column in table.columns))

    def close(self) -> None:
        """Finish the file (the last row group, the Parquet footer); the handle stays open."""
        if self._fmt == ".parquet":
            self._parquet.close()
        elif self._fmt == ".csv":
            self._text.detach()
        self._io.wait()
        self._io.stop()

    def stop(self) -> None:
        """Stop the background thread (a write in flight ends first); nothing more is written."""
        self._io.stop()


class _ParquetColumns:
    """A Parquet writer fed with column batches, writing a row group every ``PARQUET_ROW_GROUP`` rows."""

    def __init__(self, handle: IO[bytes], record_type: type[msgspec.Struct], background: _OneAhead) -> None:
        import pyarrow.parquet as pq

        self._schema = arrow_schema(record_type)
        dictionary = [name for name in DICTIONARY_COLUMNS if name in self._schema.names]
        self._writer = pq.ParquetWriter(handle, self._schema, use_dictionary=dictionary)
        self._io = background
        self._batches: list[Any] = []
        self._rows = 0

    def write(self, columns: Columns) -> None:
        """Convert a batch to Arrow now (the lists can go), write once a row group is full."""
        import pyarrow as pa

        arrays = [arrow_array(c, f.type) for c, f in zip(columns, self._schema, strict=True)]
        self.write_table(pa.Table.from_batches([pa.record_batch(arrays, schema=self._schema)]))

    def write_table(self, table: Any) -> None:
        """Gather an Arrow table of records, writing once a row group is full."""
        if table.num_rows:
            self._batches += table.to_batches()
            self._rows += table.num_rows
        if self._rows >= PARQUET_ROW_GROUP:
            self._flush()

    def close(self) -> None:
        """Write the last row group and the footer."""
        self._flush()
        self._io.wait()
        self._writer.close()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._batches:
            table = pa.Table.from_batches(self._batches, schema=self._schema)
            self._io.submit(self._writer.write_table, table, max(self._rows, 1))
            self._batches, self._rows = [], 0


def arrow_schema(record_type: type[msgspec.Struct]) -> Any:
    """The Parquet schema of a record type, from its annotations."""
    import pyarrow as pa

    types = {"str": pa.string(), "float": pa.float64(), "int": pa.int64()}
    return pa.schema([pa.field(name, types[text.split(" | ")[0]]) for name, text in _annotations(record_type)])


def _annotations(record_type: type[msgspec.Struct]) -> list[tuple[str, str]]:
    """(field, annotation text) pairs; annotations are strings under ``from __future__ import annotations``."""
    return [(f.name, str(record_type.__annotations__[f.name])) for f in msgspec.structs.fields(record_type)]


_ARRAY_CODES = {"double": "d", "int64": "q"}


def arrow_array(values: list[Any], arrow_type: Any) -> Any:
    """An Arrow string, double or int64 array built from buffers.

    ``pa.array`` would do, but its first call imports pandas (seconds, and tens of MB) to check the
    argument's type.
    """
    import pyarrow as pa

    validity = None
    if None in values:
        present = bytes(map(operator.is_not, values, itertools.repeat(None)))
        validity = pa.Array.from_buffers(pa.uint8(), len(values), [None, pa.py_buffer(present)])
        validity = validity.cast(pa.bool_()).buffers()[1]
        filler = "" if arrow_type == pa.string() else 0
        values = [filler if v is None else v for v in values]
    if arrow_type != pa.string():
        data = pa.py_buffer(array.array(_ARRAY_CODES[str(arrow_type)], values))
        return pa.Array.from_buffers(arrow_type, len(values), [validity, data])
    text = "".join(values)
    encoded = [v.encode() for v in values] if not text.isascii() else values
    offsets = array.array("i", itertools.accumulate(map(len, encoded), initial=0))
    data = pa.py_buffer(text.encode())
    return pa.Array.from_buffers(pa.string(), len(values), [validity, pa.py_buffer(offsets), data])
