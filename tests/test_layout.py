"""The architecture as the folder tree shows it (docs/architecture.md), checked on the source.

Entry points (``tasks``, ``service.web``, ``service.cli``) sit over a core (every other
package and module of ``service``); the core never imports an entry point, web and cli never
import each other, and what belongs to one entry point (the terminal, the queue's task
names, the web routes, the database dialect) is spelled nowhere else.
"""

from __future__ import annotations

import ast
import re
import statistics
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[1] / "service"
ENTRY_POINTS = ("service.web", "service.cli")
BASE_MODULES = ("service.audit", "service.broker", "service.db", "service.logs")
BASE_MODULES += ("service.masking", "service.metrics", "service.models")
MAX_TOP_LEVEL_MODULES = 12
MAX_FUNCTION_LINES = 50
MAX_MEDIAN_FUNCTION_LINES = 8
# Alembic revisions are schema history, one op call per table or column, never edited once
# released: they are not held to the function-size rules.
NOT_MEASURED = SERVICE / "db" / "migrations" / "versions"
ROUTE_PATH = re.compile(r"/twilio/|/e/|\?r=")


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. "service.delivery.links"
    path: Path
    source: str
    tree: ast.Module

    @property
    def where(self) -> str:
        return self.path.relative_to(SERVICE.parent).as_posix()


@cache
def modules() -> tuple[Module, ...]:
    found = []
    for path in sorted(SERVICE.rglob("*.py")):
        parts = path.relative_to(SERVICE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        source = path.read_text(encoding="utf-8")
        found.append(Module(name, path, source, ast.parse(source, filename=str(path))))
    return tuple(found)


def imports(module: Module) -> set[str]:
    """Every module it imports, at the top or inside a function (``from a import b`` counts
    as both ``a`` and ``a.b``: b may be a module)."""
    names: set[str] = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def in_entry_point(module: Module) -> bool:
    return any(within(module.name, entry) for entry in ENTRY_POINTS)


def offenders(check: dict[str, set[str]]) -> list[str]:
    return sorted(f"{where}: {', '.join(sorted(names))}" for where, names in check.items() if names)


def test_the_core_imports_no_entry_point() -> None:
    forbidden = ("tasks", *ENTRY_POINTS)
    found = {
        module.where: {name for name in imports(module) if any(within(name, f) for f in forbidden)}
        for module in modules()
        if not in_entry_point(module)
    }
    assert offenders(found) == []


@pytest.mark.parametrize(("importer", "imported"), [ENTRY_POINTS, ENTRY_POINTS[::-1]])
def test_web_and_cli_do_not_import_each_other(importer: str, imported: str) -> None:
    found = {
        module.where: {name for name in imports(module) if within(name, imported)}
        for module in modules()
        if within(module.name, importer)
    }
    assert offenders(found) == []


def test_transports_import_only_the_base_modules() -> None:
    allowed = (*BASE_MODULES, "service.transports")
    found = {
        module.where: {
            name
            for name in imports(module)
            if within(name, "service") and not any(within(name, a) for a in allowed)
        }
        for module in modules()
        if within(module.name, "service.transports")
    }
    assert offenders(found) == []


def test_service_has_at_most_twelve_modules_of_its_own() -> None:
    top_level = sorted(path.name for path in SERVICE.glob("*.py"))
    assert len(top_level) <= MAX_TOP_LEVEL_MODULES, top_level


def test_only_the_cli_imports_rich() -> None:
    found = {
        module.where: {name for name in imports(module) if within(name, "rich")}
        for module in modules()
        if not within(module.name, "service.cli")
    }
    assert offenders(found) == []


def test_no_celery_task_name_is_spelled_under_service() -> None:
    found = {
        module.where: {
            node.value
            for node in ast.walk(module.tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("ptnudge.")
        }
        for module in modules()
    }
    assert offenders(found) == []


def test_route_paths_are_spelled_only_in_the_web_package() -> None:
    found = {
        module.where: set(ROUTE_PATH.findall(module.source))
        for module in modules()
        if not within(module.name, "service.web")
    }
    assert offenders(found) == []


def test_only_the_database_module_asks_which_database_it_runs_on() -> None:
    found = {
        module.where: {"dialect.name"}
        for module in modules()
        if "dialect.name" in module.source and not within(module.name, "service.db")
    }
    assert offenders(found) == []


def function_lengths() -> dict[str, int]:
    """Lines from ``def`` to the end of the body, for every function and method."""
    return {
        f"{module.where}:{node.lineno} {node.name}": node.end_lineno - node.lineno + 1
        for module in modules()
        if not module.path.is_relative_to(NOT_MEASURED)
        for node in ast.walk(module.tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno
    }


def test_no_function_is_over_fifty_lines() -> None:
    lengths = function_lengths()
    assert sorted(where for where, lines in lengths.items() if lines > MAX_FUNCTION_LINES) == []


def test_the_median_function_is_at_most_eight_lines() -> None:
    lengths = function_lengths()
    assert len(lengths) > 100  # the walk found the code
    assert statistics.median(lengths.values()) <= MAX_MEDIAN_FUNCTION_LINES
