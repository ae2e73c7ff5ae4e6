"""Reading events, items and users from CSV, TSV, Parquet and JSONL files, with validation.

Text formats may be compressed, as real logs usually are: ``.gz``, ``.zst``, ``.bz2`` or ``.xz``
after the format's own extension (``events.csv.gz``, ``reviews.jsonl.zst``), read by extension.

Every error names the file, the line (text formats) or row (Parquet), and the column, and says what
was expected. Values are read as strings first so that IDs such as ``007`` keep their form.
"""

from __future__ import annotations

import bz2
import csv
import functools
import gzip
import io
import json
import lzma
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from penchant.data.dataset import Dataset
from penchant.data.filters import Filters
from penchant.data.schema import EVENT_OPTIONAL, EVENT_REQUIRED, CleaningReport, ColumnMap
from penchant.errors import InputError, where

_LOCATION = "_location"  # internal column: the line (or row) each record came from
TEXT_FORMATS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
JSON_FORMATS = {".jsonl", ".ndjson", ".json"}
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".bz2": "bz2", ".xz": "xz"}
SUPPORTED = ".csv, .tsv, .parquet or .jsonl, optionally compressed (.gz, .zst, .bz2, .xz)"


@dataclass(frozen=True)
class SqlSource:
    """A SQL query as a table: ``query`` run on ``url`` (``sqlite:///PATH`` or
    ``postgresql://USER@HOST:PORT/DATABASE``), read-only, its rows fetched in batches. ``name`` is how
    messages name it (the command-line option)."""

    query: str
    url: str
    name: str = "--events-sql"


SQL_BATCH = 100_000


def _read_sql(source: SqlSource) -> pd.DataFrame:
    """The query's rows as strings-first columns, like a file's; errors name the option and row."""
    url = source.url
    if url.startswith("sqlite:///"):
        import sqlite3

        path = Path(url[len("sqlite:///") :]).expanduser()
        if not path.is_file():
            raise InputError(f"--source-db {url}: no such SQLite file")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # read-only: a query cannot change it
    elif url.startswith(("postgresql://", "postgres://")):
        import psycopg

        try:
            conn = psycopg.connect(url, connect_timeout=10)
        except psycopg.Error as exc:
            raise InputError(
                f"--source-db: cannot connect to the PostgreSQL server ({_first_line(exc)})"
            ) from None
        conn.read_only = True
    else:
        raise InputError("--source-db: expected sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE")
    try:
        cursor = conn.cursor()
        try:
            cursor.execute(source.query)
        except Exception as exc:  # each driver has its own error types
            raise InputError(f"{source.name}: the query failed ({_first_line(exc)})") from None
        if cursor.description is None:
            raise InputError(f"{source.name}: the statement returned no rows (give a SELECT)")
        columns = [d[0] for d in cursor.description]
        chunks = []
        while rows := cursor.fetchmany(SQL_BATCH):
            chunks.append(pd.DataFrame.from_records(rows, columns=columns))
    finally:
        conn.close()
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=columns)
    frame[_LOCATION] = np.arange(1, len(frame) + 1)
    frame.attrs["unit"] = "row"
    frame.attrs["source"] = source.name
    return frame


def _open_binary(path: Path):
    """The file's bytes, decompressed by its last extension when it names a compression."""
    kind = COMPRESSIONS.get(path.suffix.lower())
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "bz2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    if kind == "zstd":
        import zstandard  # the reader pandas itself uses for .zst

        return zstandard.open(path, "rb")
    return path.open("rb")


def _open_text(path: Path, encoding: str = "utf-8", newline: str | None = None):
    return io.TextIOWrapper(_open_binary(path), encoding=encoding, newline=newline)


def _decompression_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (OSError, EOFError, lzma.LZMAError)
    try:
        import zstandard

        errors += (zstandard.ZstdError,)
    except ImportError:
        pass
    return errors


def _read_all(path: Path) -> bytes:
    try:
        with _open_binary(path) as handle:
            return handle.read()
    except _decompression_errors() as exc:
        raise InputError(f"{path}: cannot read or decompress ({_first_line(exc)})") from None


@functools.cache
def _arrow_pool() -> None:
    """Arrow's jemalloc pool where the wheel has it and the user chose none: reading a 10^7-event
    Parquet log and cleaning its Arrow-backed string columns took 34 s with the default mimalloc
    pool and 19 s with jemalloc on this 2-core machine (the rest of it in page faults)."""
    import os

    import pyarrow as pa

    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ and "jemalloc" in pa.supported_memory_backends():
        pa.set_memory_pool(pa.jemalloc_memory_pool())


def read_table(path: str | Path | SqlSource, sep: str | None = None) -> pd.DataFrame:
    """Read a table by its extension (or run a :class:`SqlSource`); string-typed columns plus a
    location column for messages. ``sep`` overrides the delimiter of a CSV/TSV file.

    ``frame.attrs["unit"]`` is ``"line"`` for text formats and ``"row"`` for Parquet and SQL.
    """
    _arrow_pool()
    if isinstance(path, SqlSource):
        return _read_sql(path)
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        return _read_parquet_directory(path)
    suffixes = [x.lower() for x in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] in COMPRESSIONS
    suffix = (suffixes[-2] if len(suffixes) > 1 else "") if compressed else path.suffix.lower()
    if compressed and suffix not in TEXT_FORMATS and suffix not in JSON_FORMATS:
        raise InputError(f"{path}: unsupported file type '{''.join(path.suffixes[-2:])}' (use {SUPPORTED})")
    if suffix in TEXT_FORMATS:
        frame = _read_delimited(path, sep or TEXT_FORMATS[suffix])
    elif suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise InputError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None
        frame[_LOCATION] = np.arange(1, len(frame) + 1)
        frame.attrs["unit"] = "row"
    elif suffix in JSON_FORMATS:
        frame = _read_jsonl(path)
    else:
        raise InputError(f"{path}: unsupported file type '{suffix}' (use {SUPPORTED})")
    frame.attrs["source"] = str(path)
    return frame


def _read_delimited(path: Path, sep: str) -> pd.DataFrame:
    data = _read_all(path)
    try:
        # index_col=False: without it pandas silently turns the first column into the index when the
        # first data row has one field more than the header, shifting every value one column left.
        # That case then warns instead, and the warning is turned into an error below.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.BytesIO(data),
                sep=sep,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                index_col=False,
            )
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: file is empty, expected a header line and rows") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        # pandas does not count line breaks inside quoted values, so find the long row ourselves.
        records = _records(path, sep) or []
        long = [(line, n) for line, n in records[1:] if n > records[0][1]]
        if long:
            (line, saw), expected = long[0], records[0][1]
            raise InputError(f"{path}, line {line}: expected {expected} fields, found {saw}") from None
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if match:
            expected, line, saw = match.groups()
            raise InputError(f"{path}, line {line}: expected {expected} fields, found {saw}") from None
        raise InputError(f"{path}: cannot parse ({_first_line(exc)})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame[_LOCATION] = _data_lines(path, sep, len(frame), data)
    frame.attrs["unit"] = "line"
    frame.attrs["sep"] = sep
    return frame


def _data_lines(path: Path, sep: str, n_rows: int, data: bytes) -> np.ndarray:
    """The line each data row starts on (line 1 is the header), for messages.

    Blank lines and line breaks inside quoted values make rows and lines differ; only then are the
    lines counted record by record.
    """
    simple = np.arange(2, n_rows + 2)
    if data.count(b"\n") + (0 if data.endswith(b"\n") else 1) == n_rows + 1:
        return simple
    records = _records(path, sep)
    if records is None or len(records) != n_rows + 1:
        return simple
    return np.array([line for line, _ in records[1:]], dtype=np.int64)


def _records(path: Path, sep: str) -> list[tuple[int, int]] | None:
    """(first line, number of fields) of each non-blank record, header included; None if unreadable."""
    out = []
    try:
        with _open_text(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=sep)
            line = 1
            for record in reader:
                if len(record) > 1 or (record and record[0].strip()):  # pandas skips blank lines
                    out.append((line, len(record)))
                line = reader.line_num + 1
    except (csv.Error, UnicodeDecodeError, *_decompression_errors()):
        return None
    return out


def _read_jsonl(path: Path) -> pd.DataFrame:
    records, lines = [], []
    with _open_text(path) as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise InputError(
                        f"{path}, line {number}: expected a JSON object, found {type(record).__name__}"
                    )
                records.append(record)
                lines.append(number)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        except _decompression_errors() as exc:
            raise InputError(f"{path}: cannot read or decompress ({_first_line(exc)})") from None
    if not records:
        raise InputError(f"{path}: file has no records")
    frame = pd.DataFrame.from_records(records)
    frame[_LOCATION] = lines
    frame.attrs["unit"] = "line"
    return frame


def _read_parquet_directory(path: Path) -> pd.DataFrame:
    """A directory of Parquet files as one table, as Spark, Flink or a warehouse export writes it:
    every ``*.parquet`` below it in path order, Hive-style ``key=value`` folders as columns, files and
    folders starting with ``_`` or ``.`` (``_SUCCESS``, ``.crc``) left out. Messages name the file and
    its row."""
    import pyarrow.dataset as ds

    files = sorted(
        str(f)
        for f in path.rglob("*.parquet")
        if not any(part.startswith(("_", ".")) for part in f.relative_to(path).parts)
    )
    if not files:
        raise InputError(
            f"{path}: a directory with no .parquet files (give a file: {SUPPORTED}; or a Parquet directory)"
        )
    try:
        dataset = ds.dataset(
            files, format="parquet", partitioning=ds.partitioning(flavor="hive"), partition_base_dir=str(path)
        )
        counts = [fragment.count_rows() for fragment in dataset.get_fragments()]
        frame = dataset.to_table().to_pandas()
    except Exception as exc:  # pyarrow raises several types for corrupt or mismatched files
        raise InputError(f"{path}: not a readable Parquet directory ({_first_line(exc)})") from None
    # Row r of the whole table is row r - start + 1 of the file that starts at ``start``.
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    frame[_LOCATION] = np.arange(1, len(frame) + 1)
    frame.attrs["unit"] = "row"
    frame.attrs["parts"] = (files, starts.tolist())
    frame.attrs["source"] = str(path)
    return frame


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _locate(frame: pd.DataFrame, position: int, column: str | None) -> str:
    unit = frame.attrs.get("unit", "row")
    number, source = int(frame[_LOCATION].iloc[position]), frame.attrs.get("source", "input")
    if "parts" in frame.attrs:  # a Parquet directory: the file the row came from, and its row there
        files, starts = frame.attrs["parts"]
        part = int(np.searchsorted(starts, number - 1, side="right")) - 1
        source, number = files[part], number - starts[part]
    place = f"{unit} {number}"
    text = where(source, None, None) + ", " + place
    return text + (f", column '{column}'" if column else "")


DELIMITERS = (",", ";", "\t", "|")


def _require_columns(frame: pd.DataFrame, wanted: dict[str, str], kind: str) -> None:
    present = [c for c in frame.columns if c != _LOCATION]
    for canonical, source in wanted.items():
        if source not in frame.columns:
            mapped = f" (for {canonical})" if source != canonical else ""
            message = (
                f"{frame.attrs.get('source', kind)}: missing column '{source}'{mapped} in the {kind} file; "
                f"columns present: {', '.join(map(str, present)) or 'none'}"
            )
            raise InputError(message + _delimiter_hint(frame, present, source))


def _delimiter_hint(frame: pd.DataFrame, present: list, wanted: str) -> str:
    """When the header splits into the wanted column under another delimiter, say which."""
    if frame.attrs.get("unit") != "line" or "sep" not in frame.attrs:
        return ""
    header = [str(c) for c in present]
    for sep in DELIMITERS:
        if sep != frame.attrs["sep"] and any(wanted in part.split(sep) for part in header if sep in part):
            shown = "\\t" if sep == "\t" else sep
            return f"; the file looks '{shown}'-separated: pass --sep '{shown}'"
    return ""


def parse_timestamps(values: pd.Series, frame: pd.DataFrame, column: str) -> np.ndarray:
    """Seconds since the epoch from numbers or ISO-8601 dates; errors name the first bad value's place."""
    if pd.api.types.is_datetime64_any_dtype(values):  # e.g. a Parquet timestamp column
        since_epoch = pd.to_datetime(values, utc=True) - pd.Timestamp(0, tz="UTC")
        return (since_epoch / pd.Timedelta(seconds=1)).to_numpy(dtype=float, na_value=np.nan)
    as_number = pd.to_numeric(values, errors="coerce")
    missing = values.isna().to_numpy()
    if not (as_number.isna().to_numpy() & ~missing).any():
        return as_number.to_numpy(dtype=float)
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    bad = parsed.isna().to_numpy() & as_number.isna().to_numpy() & ~missing
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{_locate(frame, position, column)}: expected a timestamp (Unix seconds or an ISO date), "
            f"found '{values.iloc[position]}'"
        )
    seconds = (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return np.where(as_number.notna(), as_number, seconds).astype(float)


def parse_numbers(values: pd.Series, frame: pd.DataFrame, column: str) -> np.ndarray:
    as_number = pd.to_numeric(values, errors="coerce")
    bad = as_number.isna().to_numpy() & values.notna().to_numpy()
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{_locate(frame, position, column)}: expected a number, found '{values.iloc[position]}'"
        )
    return as_number.to_numpy(dtype=float)


def _ids(values: pd.Series) -> pd.Series:
    """External IDs as strings; floats that are whole numbers (from JSON/Parquet) lose their '.0'."""

    def fix(v):
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v).strip()

    # Each distinct value is fixed once (a log has far fewer IDs than rows), then spread by its codes.
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    fixed = pd.array([fix(v) for v in uniques], dtype="str")
    # A string column (Arrow-backed), spread by a take in C; code -1 (missing) becomes NaN.
    return pd.Series(fixed.take(codes, allow_fill=True), index=values.index)


def read_events(path: str | Path | SqlSource, columns: ColumnMap | None = None) -> pd.DataFrame:
    """Events in canonical columns from a file; validation errors name file, line and column."""
    columns = columns or ColumnMap()
    frame = read_table(path, columns.sep)
    required = {c: columns.source_for(c) for c in EVENT_REQUIRED}
    _require_columns(frame, required, "events")
    out = pd.DataFrame(
        {
            "user_id": _ids(frame[required["user_id"]]),
            "item_id": _ids(frame[required["item_id"]]),
            "timestamp": parse_timestamps(frame[required["timestamp"]], frame, required["timestamp"]),
        }
    )
    for canonical in EVENT_OPTIONAL:
        source = columns.source_for(canonical)
        explicit = getattr(columns, canonical) is not None
        if source not in frame.columns:
            if explicit:
                _require_columns(frame, {canonical: source}, "events")
            continue
        if canonical == "value":
            out["value"] = parse_numbers(frame[source], frame, source)
        else:
            out[canonical] = frame[source].where(frame[source].notna(), None)
    if len(out) == 0:
        raise InputError(f"{path}: no events in the file")
    return out


def read_items(path: str | Path, columns: ColumnMap | None = None) -> pd.DataFrame:
    """Item catalogue in canonical columns; ``categories`` becomes a list of strings."""
    columns = columns or ColumnMap()
    frame = read_table(path, columns.sep)
    id_column = columns.source_for("item_id")
    _require_columns(frame, {"item_id": id_column}, "items")
    out = frame.drop(columns=[_LOCATION]).rename(columns={id_column: "item_id"})
    out["item_id"] = _ids(out["item_id"])
    missing = out["item_id"].isna().to_numpy()
    if missing.any():
        position = int(np.flatnonzero(missing)[0])
        raise InputError(f"{_locate(frame, position, id_column)}: item_id is empty")
    for canonical in ("title", "description", "categories"):
        source = columns.source_for(canonical)
        if source != canonical and source in out:
            out = out.rename(columns={source: canonical})
        elif getattr(columns, canonical) is not None and source not in out:
            _require_columns(frame, {canonical: source}, "items")
    if "categories" in out:
        out["categories"] = out["categories"].map(split_categories)
    return out


def read_users(path: str | Path, columns: ColumnMap | None = None) -> pd.DataFrame:
    columns = columns or ColumnMap()
    frame = read_table(path, columns.sep)
    id_column = columns.source_for("user_id")
    _require_columns(frame, {"user_id": id_column}, "users")
    out = frame.drop(columns=[_LOCATION]).rename(columns={id_column: "user_id"})
    out["user_id"] = _ids(out["user_id"])
    return out


def split_categories(value) -> list[str]:
    """Categories from a list, or a string separated by '|' (or ',' / ';' when there is no '|')."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value)
    for sep in ("|", ";", ","):
        if sep in text:
            return [part.strip() for part in text.split(sep) if part.strip()]
    return [text.strip()] if text.strip() else []


def read_text_rows(
    path: str | Path, columns: ColumnMap | None = None, text_col: str = "text"
) -> pd.DataFrame:
    """Rows of a tags or reviews file: user, item and time in the events' column names, and the
    text in ``text_col``; rows with no text are left out (there is nothing to join)."""
    columns = columns or ColumnMap()
    frame = read_table(path, columns.sep)
    required = {c: columns.source_for(c) for c in EVENT_REQUIRED} | {"text": text_col}
    _require_columns(frame, required, "text")
    out = pd.DataFrame(
        {
            "user_id": _ids(frame[required["user_id"]]),
            "item_id": _ids(frame[required["item_id"]]),
            "timestamp": parse_timestamps(frame[required["timestamp"]], frame, required["timestamp"]),
            "text": frame[text_col].where(frame[text_col].notna(), None),
        }
    )
    return out[out["text"].notna() & (out["text"].astype(str).str.strip() != "")]


def attach_text(
    events: pd.DataFrame, rows: pd.DataFrame, event_type: str, source: str
) -> tuple[pd.DataFrame, str]:
    """Join text rows onto events: a row whose user, item and time match an event gives that event
    its text (several rows of one event are joined with "; "); every other row becomes an event of
    its own, of type ``event_type``. Returns the events and one line saying what was done."""
    keys = ["user_id", "item_id", "timestamp"]
    joined = (
        rows.groupby(keys, sort=False)["text"].agg(lambda texts: "; ".join(map(str, texts))).reset_index()
    )
    found = joined.merge(events[keys].drop_duplicates(), on=keys, how="inner")
    matched = rows.merge(found[keys], on=keys, how="inner")
    events = events.copy()
    for column in ("text", "event_type"):
        if column not in events:
            events[column] = None
    if len(found):
        texts = events[keys].merge(found, on=keys, how="left")["text"].to_numpy()
        old = events["text"].to_numpy(dtype=object)
        has_new = pd.notna(texts)
        has_old = pd.notna(old) & (pd.Series(old).astype(str).str.strip() != "").to_numpy()
        merged = np.where(
            has_new & has_old, pd.Series(old).astype(str) + "; " + pd.Series(texts).astype(str), old
        )
        events["text"] = np.where(has_new & ~has_old, texts, merged)
    rest = rows.merge(found[keys], on=keys, how="left", indicator=True)
    rest = rest[rest["_merge"] == "left_only"].drop(columns="_merge").assign(event_type=event_type)
    if "value" in events:
        rest["value"] = np.nan
    events = pd.concat([events, rest[[c for c in events.columns if c in rest.columns]]], ignore_index=True)
    line = (
        f"{source}: {len(rows)} text rows; {len(matched)} joined onto the {len(found)} events with the same "
        f"user, item and time; {len(rest)} added as events of type '{event_type}'"
    )
    return events, line


def load_dataset(
    events: str | Path | SqlSource,
    items: str | Path | SqlSource | None = None,
    users: str | Path | None = None,
    columns: ColumnMap | None = None,
    filters: Filters | None = None,
    text_file: str | Path | None = None,
    text_col: str = "text",
    text_type: str = "tag",
) -> Dataset:
    """Read, validate and clean a user's own files into a :class:`Dataset` (``filters``: which
    events count, see :class:`penchant.data.filters.Filters`). ``text_file``: a tags or reviews file
    with the events' user, item and time columns and the text in ``text_col``, joined on as
    :func:`attach_text` says."""
    event_frame = read_events(events, columns)
    notes = []
    if text_file is not None:
        rows = read_text_rows(text_file, columns, text_col)
        event_frame, line = attach_text(event_frame, rows, text_type, str(text_file))
        notes.append(line)
    item_frame = read_items(items, columns) if items else None
    user_frame = read_users(users, columns) if users else None
    report = CleaningReport(
        events_read=len(event_frame),
        items_read=0 if item_frame is None else len(item_frame),
        users_read=0 if user_frame is None else len(user_frame),
        notes=notes,
    )
    return Dataset.from_frames(
        event_frame,
        item_frame,
        user_frame,
        name="sql" if isinstance(events, SqlSource) else _stem(Path(events)),
        report=report,
        filters=filters,
    )


def _stem(path: Path) -> str:
    """The file name without its format and compression extensions (``events.csv.gz`` -> ``events``)."""
    name = path.name
    for _ in range(2):
        suffix = Path(name).suffix.lower()
        if suffix in COMPRESSIONS or suffix in TEXT_FORMATS or suffix in JSON_FORMATS or suffix == ".parquet":
            name = name[: -len(suffix)]
    return name or path.name
