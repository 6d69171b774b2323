"""The code's shape, checked: no import cycle, no oversize function or class, SQL only in the store.

The import contracts themselves (layers, forbidden imports) are in pyproject.toml and run by
``lint-imports``; these are the rules import-linter cannot state.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("billpay", "tasks", "flows", "deployments")
MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = 250
# Uppercase keywords, the way this project writes SQL, so prose ("select a plan") never matches.
SQL_TEXT = re.compile(
    r"\bSELECT\b[\s\S]*\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\S+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\bCREATE\s+(?:OR\s+REPLACE\s+|UNIQUE\s+)?"
    r"(?:TABLE|INDEX|DATABASE|FUNCTION|VIEW|TRIGGER|EXTENSION|SCHEMA|TYPE)\b|\bEXPLAIN\b"
)


def _python_files(*packages: str) -> Iterator[Path]:
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the import graph is deep enough to hit recursion limits)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            child = next(successors, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def _cycle_through(first: str, members: set[str], graph: dict[str, set[str]]) -> list[str]:
    """One shortest import cycle from ``first`` back to itself, inside ``members``."""
    paths = {target: [first, target] for target in graph[first] & members}
    while first not in paths:
        paths = {
            target: path + [target]
            for path in paths.values()
            for target in graph[path[-1]] & members
        }
    return paths[first]


def test_no_import_cycle_between_project_modules() -> None:
    imports = grimp.build_graph(*PACKAGES, cache_dir=None)
    graph = {m: set(imports.find_modules_directly_imported_by(m)) for m in imports.modules}
    cycles = [
        " -> ".join(_cycle_through(component[0], set(component), graph))
        for component in _strongly_connected(graph)
        if len(component) > 1
    ]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_oversize_function_or_class() -> None:
    # The sandbox is test tooling: its simulators are long tables of canned answers.
    oversize = []
    for path in _python_files(*PACKAGES):
        if "sandbox" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                limit = MAX_CLASS_LINES
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                limit = MAX_FUNCTION_LINES
            else:
                continue
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                where = path.relative_to(ROOT)
                oversize.append(f"{where}:{node.lineno} {node.name}: {lines} > {limit} lines")
    assert not oversize, "\n".join(oversize)


def test_sql_text_lives_only_in_the_store() -> None:
    found = []
    for path in _python_files(*PACKAGES):
        relative = path.relative_to(ROOT)
        if relative.parts[:2] == ("billpay", "store"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if match := SQL_TEXT.search(node.value):
                    found.append((str(relative), node.lineno, match.group(0)[:60]))
    found.sort()
    assert not found, "SQL outside billpay/store (move it to sql/queries/):\n" + "\n".join(
        f"{path}:{line}: {text!r}" for path, line, text in found
    )


def test_sql_pattern_tells_sql_from_prose() -> None:
    assert SQL_TEXT.search("SELECT * FROM bill_payments WHERE id = :id")
    assert SQL_TEXT.search("UPDATE bill_payments SET status = :s")
    assert SQL_TEXT.search('CREATE DATABASE "x"')
    assert SQL_TEXT.search("EXPLAIN (FORMAT JSON) SELECT 1")
    assert not SQL_TEXT.search("select a plan from the list, then update your settings")
    assert not SQL_TEXT.search("Create an order; the updated order is shown")
