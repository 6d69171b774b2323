"""The query catalogue: named blocks from sql/queries, identifiers only from a whitelist."""

from __future__ import annotations

import pytest

from billpay.store import queries


def test_blocks_are_named_and_comments_under_the_header_are_dropped() -> None:
    text = """
-- a file comment
-- name: first_query
-- what it is for
SELECT 1;

-- name: second_query
UPDATE t SET a = :a
 WHERE id = :id
"""
    parsed = queries.parse(text)
    assert parsed == {
        "first_query": "SELECT 1",
        "second_query": "UPDATE t SET a = :a\n WHERE id = :id",
    }


def test_a_name_defined_twice_is_an_error_naming_it() -> None:
    with pytest.raises(queries.QueryError, match="q_one"):
        queries.parse("-- name: q_one\nSELECT 1\n-- name: q_one\nSELECT 2\n", "x.sql")


def test_sql_before_any_header_is_an_error() -> None:
    with pytest.raises(queries.QueryError, match="before the first"):
        queries.parse("SELECT 1\n-- name: q\nSELECT 2\n")


def test_unknown_query_names_the_query() -> None:
    with pytest.raises(queries.QueryError, match="no_such_query"):
        queries.query("no_such_query")


def test_placeholders_take_plain_identifiers_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        queries, "catalogue", lambda: {"pick": "SELECT * FROM {queue} WHERE x = '{}'"}
    )
    assert queries.query("pick", queue="queue_pay_bills").text == (
        "SELECT * FROM queue_pay_bills WHERE x = '{}'"
    )
    assert "billpay-Staging_2" in queries.query("pick", queue="billpay-Staging_2").text
    for hostile in ("bills; DROP TABLE bills", 'a"b', "abc\n", "", "-x"):
        with pytest.raises(queries.QueryError, match="identifier"):
            queries.query("pick", queue=hostile)


def test_the_shipped_catalogue_loads() -> None:
    loaded = queries.catalogue()
    assert all(sql.strip() for sql in loaded.values())


def test_statuses_change_only_through_the_writer_functions() -> None:
    """No catalogue query sets bill_payments.status or refunds.status itself: status changes
    are calls of the plpgsql writers (sql/0006, sql/0007), which check state and lease."""
    import re

    direct = re.compile(
        r"\bupdate\s+(bill_payments|refunds)\b(\s+\w+)?\s+set\b((?!\bwhere\b).)*\bstatus\s*="
    )
    offenders = [
        name
        for name, sql in queries.catalogue().items()
        if direct.search(" ".join(sql.lower().split()))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("name", "columns"),
    [
        ("insert_success_rate_snapshot", "SUCCESS_RATE_COLUMNS"),
        ("insert_provider_snapshot", "PROVIDER_COLUMNS"),
    ],
)
def test_snapshot_inserts_write_every_report_column(name: str, columns: str) -> None:
    from billpay import reports

    sql = queries.catalogue()[name]
    listed = sql[sql.index("(") + 1 : sql.index(")")]
    assert [c.strip() for c in listed.split(",")] == list(getattr(reports, columns))
