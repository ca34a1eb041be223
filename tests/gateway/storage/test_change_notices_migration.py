"""Migration 0040 (change notices) against the bell that listens for them
(`gateway.storage.bell.TABLES`): the migration names the same tables, as a
migration does -- in its own text, importing nothing of the app's, which
moves on after it. That PostgreSQL at the schema's head has the trigger on
every one of them, and that each rings: tests/gateway/storage/test_bell.py."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from types import ModuleType

from gateway.storage import bell

MIGRATION = Path(bell.__file__).with_name("migrations") / "versions" / "0040_change_notices.py"


def _migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("change_notices_0040", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migration_names_the_bells_tables_and_imports_no_app_code() -> None:
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(MIGRATION.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert {name.split(".")[0] for name in imported} <= {"alembic", "sqlalchemy", "__future__"}
    # A table added to the bell later needs a migration of its own: this
    # comparison then moves to the union of the two.
    assert sorted(_migration().TABLES) == sorted(bell.TABLES)
