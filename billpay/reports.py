"""Reports: pure pandas builders, DataFrame in, report DataFrame out. No SQL, no Prefect.

Input frames (what ``billpay.store.reports`` reads, one query each, only these columns):

``bills`` -- one row per bill with cNGN received (``paid_at`` not null):
    bill_type, biller, status, provider, refund_reason (str / category),
    amount_cngn (Decimal), paid_at, completed_at (datetime64, UTC).

``attempts`` -- one row per provider call:
    provider, operation, outcome, error_class (category; outcome/error_class may be null),
    latency_ms (float, NaN when unknown), is_fallback (bool), started_at (datetime64, UTC),
    finished (bool: finished_at is not null), ref_key (int64 identifying the (provider,
    reference) of a pay or requery call; 0 when there is none).

Window membership: a bill belongs to a window by ``paid_at`` (when its cNGN arrived), an
attempt by ``started_at``; windows are half-open ``[start, end)``. Rates are ``Decimal`` rounded
half-up to 4 places, exactly like ``round(x::numeric, 4)`` in the SQL monitoring views, and are
``None`` when their denominator is zero ("no data"). Percentiles use linear interpolation, as
PostgreSQL's ``percentile_cont`` does. Money stays ``Decimal``.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

ALL = "*"  # a roll-up row: "all billers", "all providers"
DEFAULT_WINDOWS: tuple[str, ...] = ("1h", "24h", "7d")
DAILY_WINDOW_LABEL = "day"
REPORT_TIMEZONE = "Africa/Lagos"
OUTCOMES: tuple[str, ...] = ("success", "pending", "failed", "unknown")
NO_DATA = "no data"

_RATE_PLACES = Decimal("0.0001")
_WINDOW_RE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

# Every snapshot row starts with its moment and window.
SNAPSHOT_KEY: tuple[str, ...] = ("as_of", "window_label", "window_start", "window_end")
SUCCESS_RATE_COLUMNS: tuple[str, ...] = (
    *SNAPSHOT_KEY,
    "bill_type",
    "biller",
    "paid",
    "completed",
    "refunded",
    "in_flight",
    "settled",
    "success_rate",
    "refund_rate",
    "refunds_by_reason",
    "time_to_complete_p50_s",
    "time_to_complete_p95_s",
    "cngn_volume",
)
PROVIDER_COLUMNS: tuple[str, ...] = (
    *SNAPSHOT_KEY,
    "provider",
    "operation",
    "calls",
    "success",
    "pending",
    "failed",
    "unknown",
    "success_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "error_classes",
    "fallbacks",
    "pay_attempts_requeried",
    "requery_share",
    "tokens_delivered",
    "time_to_token_p50_s",
    "time_to_token_p95_s",
)

# What a person reads first (markdown summary, terminal table); the full rows stay in tables.
SUCCESS_RATE_SUMMARY_COLUMNS: tuple[str, ...] = tuple(
    column
    for column in SUCCESS_RATE_COLUMNS[len(SNAPSHOT_KEY) :]
    if column not in ("settled", "refunds_by_reason")
)
PROVIDER_SUMMARY_COLUMNS: tuple[str, ...] = (
    "provider",
    "operation",
    "calls",
    "success_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "fallbacks",
    "requery_share",
    "time_to_token_p95_s",
    "error_classes",
)


# --- windows ------------------------------------------------------------------------------


def parse_window(text: str) -> timedelta:
    """``"15m"``, ``"1h"``, ``"24h"``, ``"7d"``, ``"2w"`` -> timedelta."""
    match = _WINDOW_RE.match(text.strip().lower())
    if not match or int(match[1]) == 0:
        raise ValueError(f"window must look like 15m, 1h, 24h or 7d, got {text!r}")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def as_utc(moment: datetime) -> datetime:
    """A plain UTC datetime; a naive one is taken as UTC. Subclasses (Prefect hands a
    scheduled start time over as a pendulum DateTime, whose zone pandas does not recognise:
    it compared as naive and failed every scheduled report run) become plain datetimes."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, UTC
    )


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open interval ``[start, end)``; ``end`` is the snapshot's ``as_of``."""

    label: str
    start: datetime
    end: datetime

    @classmethod
    def rolling(cls, label: str, as_of: datetime) -> Window:
        end = as_utc(as_of)
        return cls(label.strip().lower(), end - parse_window(label), end)

    @classmethod
    def previous_day(cls, as_of: datetime, tz: str = REPORT_TIMEZONE) -> Window:
        """The calendar day before ``as_of``'s local date, midnight to midnight in ``tz``."""
        zone = ZoneInfo(tz)
        today = as_utc(as_of).astimezone(zone).date()
        start = datetime.combine(today - timedelta(days=1), time(), tzinfo=zone)
        end = datetime.combine(today, time(), tzinfo=zone)
        return cls(DAILY_WINDOW_LABEL, as_utc(start), as_utc(end))

    def contains(self, moments: pd.Series) -> pd.Series:
        return (moments >= pd.Timestamp(self.start)) & (moments < pd.Timestamp(self.end))


def rolling_windows(labels: Iterable[str], as_of: datetime) -> list[Window]:
    windows = [Window.rolling(label, as_of) for label in labels]
    if not windows:
        raise ValueError("at least one window is needed")
    return windows


def covering(windows: Sequence[Window]) -> tuple[datetime, datetime]:
    """The one interval to read from the database so that every window can be cut from it."""
    return min(w.start for w in windows), max(w.end for w in windows)


# --- small helpers ------------------------------------------------------------------------


def ratio(numerator: int, denominator: int) -> Decimal | None:
    """``numerator / denominator`` rounded half-up to 4 places; None for an empty denominator."""
    if not denominator:
        return None
    return (Decimal(int(numerator)) / Decimal(int(denominator))).quantize(
        _RATE_PLACES, rounding=ROUND_HALF_UP
    )


def _ratios(numerators: Iterable[Any], denominators: Iterable[Any]) -> list[Decimal | None]:
    return [ratio(n, d) for n, d in zip(numerators, denominators, strict=True)]


def _decimal_sum(values: Iterable[Any]) -> Decimal:
    return sum((Decimal(v) for v in values if v is not None and v == v), Decimal(0))


def _none_if_nan(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT:
        return None
    return value


def _all_category(length: int) -> pd.Categorical:
    """A column that says "all" on every row, at one byte a row."""
    return pd.Categorical.from_codes(np.zeros(length, dtype=np.int8), categories=[ALL])


def _counts_by(frame: pd.DataFrame, keys: list[str], column: str) -> dict[tuple, dict[str, int]]:
    """``{group key: {value: count}}`` of the non-null values of ``column``."""
    present = frame[frame[column].notna()]
    if present.empty:
        return {}
    sizes = present.groupby([*keys, column], observed=True, sort=True).size()
    nested: dict[tuple, dict[str, int]] = {}
    for index, count in sizes.items():
        if count:
            nested.setdefault(tuple(index[:-1]), {})[str(index[-1])] = int(count)
    return nested


def _with_window(rows: pd.DataFrame, window: Window) -> pd.DataFrame:
    rows.insert(0, "window_end", pd.Timestamp(window.end))
    rows.insert(0, "window_start", pd.Timestamp(window.start))
    rows.insert(0, "window_label", window.label)
    rows.insert(0, "as_of", pd.Timestamp(window.end))
    return rows


# --- success rate -------------------------------------------------------------------------


def success_rate_report(bills: pd.DataFrame, windows: Sequence[Window]) -> pd.DataFrame:
    """Per window: one row per (bill_type, biller), per bill_type (biller ``*``) and overall
    (``*``, ``*``). The overall row is always there, with zeros and null rates when the window
    saw no paid order."""
    frames = [_success_rate_window(bills, window) for window in windows]
    return pd.concat(frames, ignore_index=True)[list(SUCCESS_RATE_COLUMNS)]


def _success_rate_window(bills: pd.DataFrame, window: Window) -> pd.DataFrame:
    paid = bills[bills["paid_at"].notna() & window.contains(bills["paid_at"])]
    status = paid["status"].astype(str)
    completed = status.eq("completed")
    seconds = (paid["completed_at"] - paid["paid_at"]).dt.total_seconds()
    frame = pd.DataFrame(
        {
            "bill_type": paid["bill_type"].astype(str),
            "biller": paid["biller"].astype(str),
            "is_completed": completed,
            "is_refunded": status.eq("refunded"),
            "time_to_complete_s": seconds.where(completed),
            "refund_reason": paid["refund_reason"]
            .astype(object)
            .where(paid["refund_reason"].notna(), "unspecified"),
            "amount_cngn": paid["amount_cngn"],
        }
    )
    levels = [frame, frame.assign(biller=ALL), frame.assign(bill_type=ALL, biller=ALL)]
    rows = pd.concat([_success_rate_rows(level) for level in levels], ignore_index=True)
    if rows.empty:
        rows = _success_rate_rows(None)
    return _with_window(rows, window)


def _success_rate_rows(frame: pd.DataFrame | None) -> pd.DataFrame:
    keys = ["bill_type", "biller"]
    if frame is None:  # "no data": one overall row of zeros
        return pd.DataFrame(
            [
                {
                    "bill_type": ALL,
                    "biller": ALL,
                    "paid": 0,
                    "completed": 0,
                    "refunded": 0,
                    "in_flight": 0,
                    "settled": 0,
                    "success_rate": None,
                    "refund_rate": None,
                    "refunds_by_reason": {},
                    "time_to_complete_p50_s": None,
                    "time_to_complete_p95_s": None,
                    "cngn_volume": Decimal(0),
                }
            ]
        )
    if frame.empty:
        return pd.DataFrame()
    grouped = frame.groupby(keys, sort=True)
    out = pd.DataFrame(
        {
            "paid": grouped.size(),
            "completed": grouped["is_completed"].sum(),
            "refunded": grouped["is_refunded"].sum(),
            "time_to_complete_p50_s": grouped["time_to_complete_s"].quantile(0.5),
            "time_to_complete_p95_s": grouped["time_to_complete_s"].quantile(0.95),
            "cngn_volume": grouped["amount_cngn"].agg(_decimal_sum),
        }
    ).astype({"paid": "int64", "completed": "int64", "refunded": "int64"})
    out["settled"] = out["completed"] + out["refunded"]
    out["in_flight"] = out["paid"] - out["settled"]
    out["success_rate"] = _ratios(out["completed"], out["settled"])
    out["refund_rate"] = _ratios(out["refunded"], out["settled"])
    reasons = _counts_by(frame[frame["is_refunded"]], keys, "refund_reason")
    out["refunds_by_reason"] = [reasons.get(key, {}) for key in out.index]
    for column in ("time_to_complete_p50_s", "time_to_complete_p95_s"):
        out[column] = out[column].astype(object).map(_none_if_nan)
    return out.reset_index()


# --- provider performance -----------------------------------------------------------------


def provider_performance_report(
    attempts: pd.DataFrame, bills: pd.DataFrame, windows: Sequence[Window]
) -> pd.DataFrame:
    """Per window: one row per (provider, operation) and per operation over all providers
    (provider ``*``). Counts, success rate and latency cover finished attempts (as the SQL view
    ``provider_performance`` does). On ``pay`` rows also: fallbacks taken, the share of pay
    attempts that needed a requery, and time to token (paid_at -> completed_at) of electricity
    bills completed via that provider. An empty window gives one (``*``, ``*``) row of zeros."""
    frames = [_provider_window(attempts, bills, window) for window in windows]
    return pd.concat(frames, ignore_index=True)[list(PROVIDER_COLUMNS)]


def needed_requery(attempts: pd.DataFrame) -> pd.Series:
    """For each attempt: is it a pay attempt whose (provider, reference) has a requery attempt
    starting at or after it?"""
    is_pay = attempts["operation"].eq("pay") & attempts["ref_key"].ne(0)
    requeries = attempts[attempts["operation"].eq("requery") & attempts["ref_key"].ne(0)]
    result = pd.Series(False, index=attempts.index)
    if requeries.empty or not is_pay.any():
        return result
    last_requery = requeries.groupby("ref_key")["started_at"].max()
    pays = attempts.loc[is_pay, ["ref_key", "started_at"]]
    later = pays["ref_key"].map(last_requery)
    result.loc[pays.index] = (later >= pays["started_at"]).fillna(False).astype(bool)
    return result


def _provider_window(attempts: pd.DataFrame, bills: pd.DataFrame, window: Window) -> pd.DataFrame:
    inside = attempts[window.contains(attempts["started_at"])]
    requeried = needed_requery(inside)
    finished = inside["finished"].astype(bool)
    done = inside[finished].assign(requeried=requeried[finished])
    tokens = _tokens(bills, window)
    levels = [
        (done, tokens),
        (done.assign(provider=_all_category(len(done))), tokens.assign(provider=ALL)),
    ]
    rows = pd.concat([_provider_rows(a, t) for a, t in levels], ignore_index=True)
    if rows.empty:
        rows = _provider_no_data()
    return _with_window(rows, window)


def _tokens(bills: pd.DataFrame, window: Window) -> pd.DataFrame:
    """Electricity bills completed via a provider, paid in the window, with time to token."""
    electric = bills[
        bills["paid_at"].notna()
        & window.contains(bills["paid_at"])
        & bills["bill_type"].astype(str).eq("electricity")
        & bills["status"].astype(str).eq("completed")
        & bills["provider"].notna()
        & bills["completed_at"].notna()
    ]
    return pd.DataFrame(
        {
            "provider": electric["provider"].astype(str),
            "time_to_token_s": (electric["completed_at"] - electric["paid_at"]).dt.total_seconds(),
        }
    )


def _provider_no_data() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "provider": ALL,
                "operation": ALL,
                "calls": 0,
                "success": 0,
                "pending": 0,
                "failed": 0,
                "unknown": 0,
                "success_rate": None,
                "latency_p50_ms": None,
                "latency_p95_ms": None,
                "latency_p99_ms": None,
                "error_classes": {},
                "fallbacks": 0,
                "pay_attempts_requeried": None,
                "requery_share": None,
                "tokens_delivered": None,
                "time_to_token_p50_s": None,
                "time_to_token_p95_s": None,
            }
        ]
    )


def _provider_rows(done: pd.DataFrame, tokens: pd.DataFrame) -> pd.DataFrame:
    keys = ["provider", "operation"]
    counts = ["calls", *OUTCOMES, "fallbacks"]
    if done.empty:
        out = pd.DataFrame(columns=[*keys, *counts]).set_index(keys)
    else:
        grouped = done.groupby(keys, observed=True, sort=True)
        by_outcome = (
            done.groupby([*keys, "outcome"], observed=True)
            .size()
            .unstack("outcome", fill_value=0)
            .reindex(columns=list(OUTCOMES), fill_value=0)
        )
        latency = grouped["latency_ms"].quantile([0.5, 0.95, 0.99]).unstack()
        out = pd.DataFrame(
            {
                "calls": grouped.size(),
                "with_outcome": grouped["outcome"].count(),
                "fallbacks": grouped["is_fallback"].sum(),
                "latency_p50_ms": latency[0.5],
                "latency_p95_ms": latency[0.95],
                "latency_p99_ms": latency[0.99],
            }
        ).join(by_outcome)
        out.index = out.index.set_names(keys)
        out.index = pd.MultiIndex.from_tuples([(str(p), str(o)) for p, o in out.index], names=keys)
    pay_extra = _pay_extras(done, tokens)
    if not pay_extra.empty:
        out = out.join(pay_extra, how="outer")
    if out.empty:
        return pd.DataFrame()
    out = out.reindex(
        columns=[
            *counts,
            "with_outcome",
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_p99_ms",
            "pay_attempts",
            "pay_attempts_requeried",
            "tokens_delivered",
            "time_to_token_p50_s",
            "time_to_token_p95_s",
        ]
    )
    for column in [*counts, "with_outcome"]:
        out[column] = out[column].fillna(0).astype("int64")
    out["success_rate"] = _ratios(out["success"], out["with_outcome"])
    is_pay = out.index.get_level_values("operation") == "pay"
    pay_attempts = out["pay_attempts"].fillna(0)
    requeried = out["pay_attempts_requeried"].fillna(0)
    shares = _ratios(requeried, pay_attempts)
    out["requery_share"] = [
        share if pay else None for share, pay in zip(shares, is_pay, strict=True)
    ]
    # object columns: ints where the metric applies, None where it does not (not NaN)
    out["pay_attempts_requeried"] = pd.Series(
        [int(r) if pay else None for r, pay in zip(requeried, is_pay, strict=True)],
        index=out.index,
        dtype=object,
    )
    out["tokens_delivered"] = pd.Series(
        [
            int(t) if pay else None
            for t, pay in zip(out["tokens_delivered"].fillna(0), is_pay, strict=True)
        ],
        index=out.index,
        dtype=object,
    )
    classes = _counts_by(done, keys, "error_class") if not done.empty else {}
    out["error_classes"] = [classes.get(key, {}) for key in out.index]
    for column in (
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "time_to_token_p50_s",
        "time_to_token_p95_s",
    ):
        out[column] = out[column].astype(object).map(_none_if_nan)
    return out.drop(columns=["with_outcome", "pay_attempts"]).reset_index()


def _pay_extras(done: pd.DataFrame, tokens: pd.DataFrame) -> pd.DataFrame:
    """Requery share inputs and time to token, indexed by (provider, "pay")."""
    parts = []
    if not done.empty:
        pays = done[done["operation"].eq("pay")]
        if not pays.empty:
            grouped = pays.assign(provider=pays["provider"].astype(str)).groupby("provider")
            parts.append(
                pd.DataFrame(
                    {
                        "pay_attempts": grouped.size(),
                        "pay_attempts_requeried": grouped["requeried"].sum(),
                    }
                )
            )
    if not tokens.empty:
        grouped = tokens.groupby("provider")
        parts.append(
            pd.DataFrame(
                {
                    "tokens_delivered": grouped.size(),
                    "time_to_token_p50_s": grouped["time_to_token_s"].quantile(0.5),
                    "time_to_token_p95_s": grouped["time_to_token_s"].quantile(0.95),
                }
            )
        )
    if not parts:
        return pd.DataFrame()
    extra = pd.concat(parts, axis=1)
    extra.index = pd.MultiIndex.from_tuples(
        [(str(p), "pay") for p in extra.index], names=["provider", "operation"]
    )
    return extra


# --- trends and changes -------------------------------------------------------------------


def _local_day(moments: pd.Series, tz: str) -> pd.Series:
    return moments.dt.tz_convert(tz).dt.normalize().dt.tz_localize(None)


def provider_daily_series(
    attempts: pd.DataFrame,
    *,
    as_of: datetime,
    days: int = 7,
    operation: str = "pay",
    tz: str = REPORT_TIMEZONE,
) -> pd.DataFrame:
    """Per local day and provider, for one operation: calls, success rate (float) and p95
    latency -- the data of the trend chart."""
    window = Window("trend", as_utc(as_of) - timedelta(days=days), as_utc(as_of))
    chosen = attempts[
        window.contains(attempts["started_at"])
        & attempts["finished"].astype(bool)
        & attempts["operation"].eq(operation)
    ]
    if chosen.empty:
        return pd.DataFrame(columns=["day", "provider", "calls", "success_rate", "latency_p95_ms"])
    frame = pd.DataFrame(
        {
            "day": _local_day(chosen["started_at"], tz),
            "provider": chosen["provider"].astype(str),
            "success": chosen["outcome"].eq("success"),
            "has_outcome": chosen["outcome"].notna(),
            "latency_ms": chosen["latency_ms"],
        }
    )
    grouped = frame.groupby(["day", "provider"], sort=True)
    out = pd.DataFrame(
        {
            "calls": grouped.size(),
            "success_rate": grouped["success"].sum() / grouped["has_outcome"].sum(),
            "latency_p95_ms": grouped["latency_ms"].quantile(0.95),
        }
    )
    return out.reset_index()


def success_daily_series(
    bills: pd.DataFrame, *, as_of: datetime, days: int = 7, tz: str = REPORT_TIMEZONE
) -> pd.DataFrame:
    """Per local day (of paid_at) and bill type: paid, success rate (float) and p95 time to
    complete -- the data of the trend chart."""
    window = Window("trend", as_utc(as_of) - timedelta(days=days), as_utc(as_of))
    paid = bills[bills["paid_at"].notna() & window.contains(bills["paid_at"])]
    if paid.empty:
        return pd.DataFrame(
            columns=["day", "bill_type", "paid", "success_rate", "time_to_complete_p95_s"]
        )
    status = paid["status"].astype(str)
    completed = status.eq("completed")
    frame = pd.DataFrame(
        {
            "day": _local_day(paid["paid_at"], tz),
            "bill_type": paid["bill_type"].astype(str),
            "completed": completed,
            "settled": completed | status.eq("refunded"),
            "seconds": (paid["completed_at"] - paid["paid_at"]).dt.total_seconds().where(completed),
        }
    )
    grouped = frame.groupby(["day", "bill_type"], sort=True)
    settled = grouped["settled"].sum()
    out = pd.DataFrame(
        {
            "paid": grouped.size(),
            "success_rate": grouped["completed"].sum() / settled.where(settled > 0),
            "time_to_complete_p95_s": grouped["seconds"].quantile(0.95),
        }
    )
    return out.reset_index()


def _as_float(value: Any) -> float | None:
    value = _none_if_nan(value)
    return None if value is None else float(value)


def detect_changes(
    current: pd.DataFrame,
    previous: pd.DataFrame,
    *,
    keys: Sequence[str],
    thresholds: Mapping[str, tuple[str, float]],
) -> pd.DataFrame:
    """Rows of ``current`` whose metric moved beyond a threshold against ``previous``.

    ``thresholds`` maps a metric to ``("abs", 0.05)`` (absolute move, e.g. 5 points of success
    rate) or ``("rel", 0.25)`` (relative move, e.g. p95 latency up or down by 25 %). Rows only on
    one side, and null values, are not changes: there is nothing to compare."""
    columns = ["window_label", *keys, "metric", "before", "after", "change"]
    if current.empty or previous.empty:
        return pd.DataFrame(columns=columns)
    join = ["window_label", *keys]
    merged = current.merge(previous, on=join, suffixes=("", "_before"))
    found = []
    for _, row in merged.iterrows():
        for metric, (kind, limit) in thresholds.items():
            after, before = _as_float(row[metric]), _as_float(row[f"{metric}_before"])
            if after is None or before is None:
                continue
            change = (
                after - before
                if kind == "abs"
                else ((after - before) / before if before else (math.inf if after else 0.0))
            )
            if abs(change) >= limit:
                found.append([*(row[k] for k in join), metric, before, after, change])
    return pd.DataFrame(found, columns=columns)


# --- presentation -------------------------------------------------------------------------


def _cell(value: Any, *, flat: bool) -> Any:
    value = _none_if_nan(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
        return None if isinstance(value, float) and math.isnan(value) else value
    if isinstance(value, dict) and flat:
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return value


def to_records(report: pd.DataFrame, *, flat: bool = False) -> list[dict[str, Any]]:
    """JSON-safe rows: Decimal as exact strings, timestamps ISO 8601, NaN as None; ``flat``
    turns breakdown dicts into ``"a=1, b=2"`` (for table artifacts, CSV and terminals)."""
    return [
        {column: _cell(value, flat=flat) for column, value in row.items()}
        for row in report.to_dict(orient="records")
    ]


def to_json(report: pd.DataFrame) -> str:
    return json.dumps(to_records(report), indent=2)


def to_csv(report: pd.DataFrame) -> str:
    return pd.DataFrame(to_records(report, flat=True), columns=report.columns).to_csv(index=False)


def _markdown_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    def fmt(value: Any) -> str:
        if value is None:
            return "—"
        if isinstance(value, float):
            return f"{value:,.1f}"
        return str(value).replace("|", "\\|").replace("*", "\\*")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def is_no_data(report: pd.DataFrame, count_column: str) -> bool:
    return report.empty or int(report[count_column].sum()) == 0


def render_trend_png(
    series: pd.DataFrame, *, group: str, panels: Sequence[tuple[str, str]], title: str
) -> bytes | None:
    """A PNG line chart, one panel per metric, one line per ``group``; None without data.

    Uses a bare ``Figure`` with the Agg canvas: no pyplot global state, safe in worker threads.
    """
    if series.empty:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import DateFormatter, DayLocator
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 2.6 * len(panels)), dpi=80)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for axis, (column, label) in zip(axes, panels, strict=True):
        for name, part in series.groupby(group, sort=True):
            axis.plot(part["day"], part[column].astype(float), marker="o", label=str(name))
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
        if column.endswith("rate"):
            axis.set_ylim(0, 1.05)
    first, last = series["day"].min(), series["day"].max()
    axes[-1].set_xlim(first - pd.Timedelta(hours=12), last + pd.Timedelta(hours=12))
    axes[-1].xaxis.set_major_locator(DayLocator())
    axes[-1].xaxis.set_major_formatter(DateFormatter("%d %b"))
    axes[0].set_title(title)
    axes[0].legend(loc="best", fontsize="small")
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def summary_markdown(
    *,
    title: str,
    report: pd.DataFrame,
    keys: Sequence[str],
    columns: Sequence[str],
    count_column: str,
    changes: pd.DataFrame,
    change_subject: str,
    chart_png: bytes | None,
) -> str:
    """The run's markdown artifact: what changed since the previous snapshot first, then the
    report per window ("no data" for an empty one), then the trend chart."""
    as_of = report["as_of"].max() if not report.empty else None
    lines = [f"# {title}", "", f"as of **{_cell(as_of, flat=True)}**", "", "## What changed", ""]
    if changes.empty:
        lines.append(
            f"No {change_subject} moved beyond the thresholds since the previous snapshot."
        )
    else:
        for change in to_records(changes):
            who = " / ".join(str(change[k]) for k in keys)
            kind = "points" if change["metric"].endswith("rate") else "relative"
            delta = change["change"]
            shown = f"{delta:+.4f}" if kind == "points" else f"{delta:+.0%}"
            lines.append(
                f"- **{who}** ({change['window_label']}): {change['metric']} "
                f"{change['before']:.4g} → {change['after']:.4g} ({shown})"
            )
    for label, part in report.groupby("window_label", sort=False):
        lines += ["", f"## Window {label}", ""]
        if is_no_data(part, count_column):
            lines.append(NO_DATA)
            continue
        lines.append(_markdown_table(to_records(part[list(columns)], flat=True), columns))
    lines += ["", "## Trend", ""]
    if chart_png is None:
        lines.append(NO_DATA)
    else:
        lines.append(f"![trend]({png_data_uri(chart_png)})")
    return "\n".join(lines) + "\n"
