"""The query catalogue: every SQL statement the store runs, by name, from ``sql/queries/*.sql``.

A catalogue file is a list of blocks, each headed by a ``-- name: <query_name>`` line; comment
lines right under the header say what the query is for. Names are unique across all files::

    -- name: claim_bills
    -- Claim up to :limit rows of a queue view (SKIP LOCKED) and lease them to :worker.
    WITH picked AS (SELECT id FROM {queue} ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
    ...

Bind parameters are ``:name`` (SQLAlchemy ``text``). A ``{placeholder}`` stands for an SQL
identifier (a view or table name) and is filled by :func:`query` from a whitelist of plain
names; values never go there.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import sqlalchemy as sa

QUERIES_DIR = Path(__file__).resolve().parents[2] / "sql" / "queries"
_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$")
# A placeholder takes a name, never SQL: letters, digits, _ and - (a database name such as
# billpay-staging goes inside double quotes in its query). No quotes, spaces or semicolons.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")


class QueryError(LookupError):
    """A query name that is not in the catalogue, or a bad identifier for a placeholder."""


def parse(text: str, source: str = "<string>") -> dict[str, str]:
    """Blocks of one catalogue file: name -> SQL text (header and leading comments removed)."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line.strip())
        if header:
            name = header.group(1)
            if name in blocks:
                raise QueryError(f"{source}:{number}: query {name!r} defined twice")
            current = blocks[name] = []
        elif current is not None:
            if current or not line.strip().startswith("--"):
                current.append(line)
        elif line.strip() and not line.strip().startswith("--"):
            raise QueryError(f"{source}:{number}: SQL before the first '-- name:' header")
    parsed = {name: "\n".join(lines).strip().rstrip(";").strip() for name, lines in blocks.items()}
    empty = [name for name, sql in parsed.items() if not sql]
    if empty:
        raise QueryError(f"{source}: empty queries {empty}")
    return parsed


@cache
def catalogue(directory: Path = QUERIES_DIR) -> dict[str, str]:
    """Every named query of every ``*.sql`` file in ``directory``, loaded once per process."""
    found: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        for name, sql in parse(path.read_text(encoding="utf-8"), path.name).items():
            if name in found:
                raise QueryError(f"{path.name}: query {name!r} is also defined in another file")
            found[name] = sql
    return found


def query(name: str, **identifiers: str) -> sa.TextClause:
    """The named query as a ``TextClause``, with ``{placeholders}`` filled by ``identifiers``."""
    try:
        sql = catalogue()[name]
    except KeyError:
        raise QueryError(f"no query named {name!r} in {QUERIES_DIR}") from None
    for key, value in identifiers.items():
        if not _IDENTIFIER.fullmatch(value):
            raise QueryError(f"{name}: {key}={value!r} is not a plain SQL identifier")
        sql = sql.replace("{" + key + "}", value)
    return sa.text(sql)
