"""Report reads and writes: the frames ``billpay.reports`` computes from, and its snapshots.

Reads select only the columns the reports use, stream in chunks (a server-side cursor) and
shrink each chunk to compact dtypes (categories, one-byte booleans) before the next arrives, so
a million provider attempts fit in a few tens of MB. The metrics themselves are pandas'.
Queries: ``sql/queries/reports.sql``.
"""

from __future__ import annotations

import io
import json
import resource
import sys
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from pandas.api.types import union_categoricals

from billpay import reports
from billpay.store.engine import Database
from billpay.store.queries import query

CHUNK_ROWS = 200_000

_CATEGORY_COLUMNS = {
    "bills": ("bill_type", "biller", "status", "provider", "refund_reason"),
    "attempts": ("provider", "operation", "outcome", "error_class"),
}

_ATTEMPT_DTYPES = {
    "provider": "category",
    "operation": "category",
    "outcome": "category",
    "error_class": "category",
    "latency_ms": "float64",
    "started_us": "int64",
    "ref_key": "int64",
}

# A snapshot kind's table and columns; its queries are named insert_<kind>_snapshot,
# delete_<kind>_snapshot, previous_<kind>_snapshot and <kind>_history.
_TABLES = {
    "success_rate": ("report_success_rate", reports.SUCCESS_RATE_COLUMNS),
    "provider": ("report_provider_performance", reports.PROVIDER_COLUMNS),
}
_JSON_COLUMNS = frozenset({"refunds_by_reason", "error_classes"})


# --- reads --------------------------------------------------------------------------------


def _chunks(
    db: Database, statement: sa.TextClause, params: dict[str, Any], chunk_rows: int
) -> Iterator[pd.DataFrame]:
    with db.connect() as conn:
        conn = conn.execution_options(stream_results=True, max_row_buffer=chunk_rows)
        yield from pd.read_sql(statement, conn, params=params, chunksize=chunk_rows)


def _text_category(values: pd.Series) -> pd.Series:
    """A category column whose categories are strings whatever they looked like ("404" parses
    as a number) or whether the chunk had any: chunks must agree to be concatenated."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype("category")
    categories = pd.Index([str(c) for c in values.cat.categories], dtype="str")
    return pd.Series(
        pd.Categorical.from_codes(values.cat.codes, categories=categories),
        index=values.index,
        name=values.name,
    )


def _compact(chunk: pd.DataFrame, categories: Sequence[str]) -> pd.DataFrame:
    for column in categories:
        chunk[column] = _text_category(chunk[column])
    return chunk


def _concat(
    chunks: list[pd.DataFrame], categories: Sequence[str], columns: Sequence[str]
) -> pd.DataFrame:
    if not chunks:
        return pd.DataFrame(
            {c: pd.Series(dtype="category" if c in categories else "object") for c in columns}
        )
    if len(chunks) == 1:
        return chunks[0]
    # Chunks have different category sets; concat would fall back to object columns.
    merged = {c: union_categoricals([chunk[c] for chunk in chunks]) for c in categories}
    frame = pd.concat([chunk.drop(columns=list(categories)) for chunk in chunks], ignore_index=True)
    for column in categories:
        frame[column] = merged[column]
    return frame[list(columns)]


def _utc(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    for column in columns:
        frame[column] = pd.to_datetime(frame[column], utc=True)


class _CopyStream(io.RawIOBase):
    """A readable file over ``COPY ... TO STDOUT`` blocks, for pandas' C CSV parser."""

    def __init__(self, blocks: Iterator[Any]) -> None:
        self._blocks = blocks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._pending = memoryview(bytes(block))
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def read_attempts(
    db: Database,
    since: datetime,
    until: datetime,
    *,
    chunk_rows: int = CHUNK_ROWS,
    api_client_id: int | None = None,
) -> pd.DataFrame:
    """Provider attempts started in ``[since, until)``, in the shape ``billpay.reports`` takes;
    with ``api_client_id``, only attempts for that API client's bills (``GET /api/bills/stats``).

    Streams ``COPY (SELECT ...) TO STDOUT`` as CSV into pandas' C parser in chunks, each chunk
    parsed straight into categories and numpy columns (no Python object per value)."""
    categories = _CATEGORY_COLUMNS["attempts"]
    columns = [
        "provider",
        "operation",
        "outcome",
        "error_class",
        "latency_ms",
        "is_fallback",
        "started_at",
        "finished",
        "ref_key",
    ]
    name, params = _scoped("read_attempts_copy", since, until, api_client_id)
    chunks = []
    raw = db.engine.raw_connection()
    try:
        with (
            raw.cursor() as cursor,
            cursor.copy(query(name).text, params) as copy,
        ):
            stream = io.BufferedReader(_CopyStream(iter(copy)), buffer_size=1 << 20)
            reader = pd.read_csv(
                stream,
                chunksize=chunk_rows,
                dtype=_ATTEMPT_DTYPES,
                true_values=["t"],
                false_values=["f"],
                keep_default_na=False,
                na_values={"outcome": [""], "error_class": [""], "latency_ms": [""]},
            )
            for chunk in reader:
                chunk["started_at"] = pd.to_datetime(chunk.pop("started_us"), unit="us", utc=True)
                chunk["is_fallback"] = chunk["is_fallback"].astype(bool)
                chunk["finished"] = chunk["finished"].astype(bool)
                chunks.append(_compact(chunk, categories))
        raw.commit()
    finally:
        raw.close()
    frame = _concat(chunks, categories, columns)
    if frame.empty:
        frame = frame.astype(
            {"latency_ms": "float64", "is_fallback": bool, "finished": bool, "ref_key": "int64"}
        )
        frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
    return frame


def read_bills(
    db: Database,
    since: datetime,
    until: datetime,
    *,
    chunk_rows: int = CHUNK_ROWS,
    api_client_id: int | None = None,
) -> pd.DataFrame:
    """Bills whose cNGN arrived (paid_at) in ``[since, until)``; amount_cngn stays Decimal.
    With ``api_client_id``, only that API client's bills."""
    categories = _CATEGORY_COLUMNS["bills"]
    columns = [
        "bill_type",
        "biller",
        "status",
        "provider",
        "refund_reason",
        "amount_cngn",
        "paid_at",
        "completed_at",
    ]
    name, params = _scoped("read_bills", since, until, api_client_id)
    chunks = [_compact(chunk, categories) for chunk in _chunks(db, query(name), params, chunk_rows)]
    frame = _concat(chunks, categories, columns)
    frame["amount_cngn"] = frame["amount_cngn"].astype(object)
    _utc(frame, ["paid_at", "completed_at"])
    return frame


def _scoped(
    name: str, since: datetime, until: datetime, api_client_id: int | None
) -> tuple[str, dict[str, Any]]:
    """A report read and its window: every bill's, or its ``read_client_*`` twin for one API
    client's bills only."""
    params: dict[str, Any] = {"since": since, "until": until}
    if api_client_id is None:
        return name, params
    return name.replace("read_", "read_client_", 1), params | {"client": api_client_id}


def database_now(db: Database) -> datetime:
    with db.connect() as conn:
        return conn.execute(query("database_now")).scalar_one()


# --- snapshots ----------------------------------------------------------------------------


def _row_params(row: dict[str, Any]) -> dict[str, Any]:
    params = {}
    for column, value in row.items():
        if column in _JSON_COLUMNS:
            value = json.dumps(value or {}, sort_keys=True)
        elif isinstance(value, pd.Timestamp):
            value = value.to_pydatetime()
        elif hasattr(value, "item"):  # numpy scalar
            value = value.item()
        if isinstance(value, float) and value != value:
            value = None
        params[column] = value
    return params


def _write_snapshot(db: Database, kind: str, report: pd.DataFrame) -> int:
    """Replace the snapshot(s) in ``report`` (one per (as_of, window_label)) in one transaction:
    a rerun for the same as_of leaves exactly one snapshot."""
    table, columns = _TABLES[kind]
    rows = [_row_params(row) for row in report[list(columns)].to_dict(orient="records")]
    snapshots = {(row["as_of"], row["window_label"]) for row in rows}
    with db.begin() as conn:
        for as_of, label in sorted(snapshots):
            # Two runs writing one snapshot at once queue here instead of colliding on the key.
            lock = {"key": f"{table}|{as_of.isoformat()}|{label}"}
            conn.execute(query("lock_report_snapshot"), lock)
            conn.execute(query(f"delete_{kind}_snapshot"), {"as_of": as_of, "window_label": label})
        if rows:
            conn.execute(query(f"insert_{kind}_snapshot"), rows)
    return len(rows)


def write_success_rate_snapshot(db: Database, report: pd.DataFrame) -> int:
    return _write_snapshot(db, "success_rate", report)


def write_provider_snapshot(db: Database, report: pd.DataFrame) -> int:
    return _write_snapshot(db, "provider", report)


def _read_snapshot(db: Database, kind: str, name: str, params: dict[str, Any]) -> pd.DataFrame:
    """Rows of the named snapshot query ``name`` for ``kind``, typed like the report frames."""
    _, columns = _TABLES[kind]
    with db.connect() as conn:
        result = conn.execute(query(name), params)
        frame = pd.DataFrame(result.mappings().all(), columns=list(result.keys()))
    if frame.empty:
        return pd.DataFrame(columns=list(columns))
    for column in ("as_of", "window_start", "window_end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame[list(columns)]


def _previous(db: Database, kind: str, as_of: datetime, labels: Sequence[str]) -> pd.DataFrame:
    params = {"as_of": as_of, "labels": list(labels)}
    return _read_snapshot(db, kind, f"previous_{kind}_snapshot", params)


def _history(
    db: Database, kind: str, window_label: str, since: datetime, until: datetime
) -> pd.DataFrame:
    params = {"window_label": window_label, "since": since, "until": until}
    return _read_snapshot(db, kind, f"{kind}_history", params)


def previous_success_rate_snapshot(
    db: Database, as_of: datetime, labels: Sequence[str]
) -> pd.DataFrame:
    return _previous(db, "success_rate", as_of, labels)


def previous_provider_snapshot(
    db: Database, as_of: datetime, labels: Sequence[str]
) -> pd.DataFrame:
    return _previous(db, "provider", as_of, labels)


def success_rate_history(
    db: Database, window_label: str, since: datetime, until: datetime
) -> pd.DataFrame:
    return _history(db, "success_rate", window_label, since, until)


def provider_history(
    db: Database, window_label: str, since: datetime, until: datetime
) -> pd.DataFrame:
    return _history(db, "provider", window_label, since, until)


# --- benchmark ----------------------------------------------------------------------------


def seed_attempts(db: Database, rows: int, *, until: datetime, run: str) -> float:
    """Insert ``rows`` synthetic provider attempts over the 7 days before ``until``;
    returns the seconds it took."""
    started = time.perf_counter()
    with db.begin() as conn:
        conn.execute(query("seed_bench_attempts"), {"rows": rows, "until": until, "run": run})
    with db.connect() as conn:
        conn.execute(query("analyze_provider_attempts"))
        conn.commit()
    return time.perf_counter() - started


def _maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _provider_report_once(db: Database, windows: Sequence[reports.Window]) -> tuple[int, int]:
    since, until = reports.covering(windows)
    attempts = read_attempts(db, since, until)
    bills = read_bills(db, since, until)
    report = reports.provider_performance_report(attempts, bills, windows)
    return len(attempts), len(report)


def bench_reports(
    db: Database,
    rows: int = 1_000_000,
    *,
    windows: Sequence[str] = reports.DEFAULT_WINDOWS,
    measure_python_peak: bool = True,
    cleanup: bool = True,
) -> dict[str, Any]:
    """Seed ``rows`` provider attempts (INSERT ... SELECT generate_series) into ``db`` and time
    the provider-performance report over them (read in chunks + pandas, every window).

    Returns seconds (seed, read+report), the process's max-RSS growth during the report and,
    with ``measure_python_peak``, a second run's tracemalloc peak (Python + numpy allocations;
    tracemalloc slows that run, so its time is not the one reported). Seeded rows are tagged
    ``bench-<run>-*`` and deleted afterwards unless ``cleanup`` is false.
    """
    run = f"{time.time_ns():x}"
    as_of = database_now(db) + timedelta(seconds=1)
    seeded_seconds = seed_attempts(db, rows, until=as_of - timedelta(seconds=1), run=run)
    windows_ = reports.rolling_windows(windows, as_of)
    try:
        rss_before = _maxrss_mb()
        started = time.perf_counter()
        attempts_read, report_rows = _provider_report_once(db, windows_)
        report_seconds = time.perf_counter() - started
        result: dict[str, Any] = {
            "rows": rows,
            "attempts_read": attempts_read,
            "report_rows": report_rows,
            "windows": list(windows),
            "seed_seconds": round(seeded_seconds, 3),
            "report_seconds": round(report_seconds, 3),
            "max_rss_growth_mb": round(_maxrss_mb() - rss_before, 1),
            "max_rss_mb": round(_maxrss_mb(), 1),
        }
        if measure_python_peak:
            tracemalloc.start()
            try:
                _provider_report_once(db, windows_)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            result["python_peak_mb"] = round(peak / (1024 * 1024), 1)
    finally:
        if cleanup:
            with db.begin() as conn:
                conn.execute(query("delete_bench_attempts"), {"run": run})
    return result
