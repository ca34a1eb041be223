"""The layout holds: no import circle, and dependencies point one way.

The graph is built from the source (every `import` and `from ... import`,
type-only and function-level ones included: a circle closed inside a function
is still two modules that know each other's internals), so a new circle or an
upward import fails here before it reaches a review.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "adapters", "registry", "policies")

# Inside `gateway/`, the order of the layers, bottom first. A module may import
# from its own layer and the layers below it, never above:
# cli -> demo -> app -> console -> api -> flows -> mcp -> a2a -> observability -> delegation
# -> http -> storage -> settings -> client.
GATEWAY_LAYERS = (
    "gateway.client",
    "gateway.settings",
    "gateway.storage",
    "gateway.http",
    "gateway.delegation",
    "gateway.observability",
    "gateway.a2a",
    "gateway.mcp",
    "gateway.flows",
    "gateway.api",
    "gateway.console",
    "gateway.app",
    "gateway.demo",
    "gateway.cli",
    "gateway.__main__",
)


def _parse(path: Path) -> ast.Module:
    """``path``'s syntax tree. Python 3.11 keeps the AST builder's recursion
    depth per interpreter, not per thread (CPython gh-106905): a parse in
    another thread at the same moment (a server thread left by an earlier
    test in this process) makes it raise SystemError; parsing again is right."""
    for _ in range(4):
        try:
            return ast.parse(path.read_text(), str(path))
        except SystemError:
            continue
    return ast.parse(path.read_text(), str(path))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def _imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """Every project module ``name`` imports, resolved to the module itself
    (`from gateway.mcp import front` names `gateway.mcp.front`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _known_prefix(alias.name, known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield from _known_prefix(full if full in known else base, known)


def _known_prefix(dotted: str, known: dict[str, Path]) -> Iterator[str]:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            yield candidate
            return


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {
        name: {d for d in _imports(name, path, known) if d != name} for name, path in known.items()
    }


def _layer(module: str) -> int | None:
    for index, prefix in enumerate(GATEWAY_LAYERS):
        if module == prefix or module.startswith(prefix + "."):
            return index
    return None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_anywhere() -> None:
    assert _cycles(_graph()) == []


def test_gateway_layers_point_down() -> None:
    upward = [
        f"{module} -> {dep}"
        for module, deps in _graph().items()
        for dep in deps
        if module.startswith("gateway")
        and dep.startswith("gateway.")
        and (_layer(module) or 0) < (_layer(dep) or 0)
    ]
    assert upward == []


def test_every_gateway_module_has_a_layer() -> None:
    unplaced = [
        m for m in _modules() if m.startswith("gateway.") and _layer(m) is None and m != "gateway"
    ]
    assert unplaced == []


@pytest.mark.parametrize("package", ["adapters", "registry", "policies"])
def test_the_libraries_import_neither_the_gateway_nor_fastapi(package: str) -> None:
    offending = []
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(_parse(path)):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            offending += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.split(".")[0] in {"gateway", "fastapi"}
            ]
    assert offending == []


def test_fastapi_is_imported_only_under_gateway() -> None:
    users = {
        _module_name(path)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "fastapi" in {_top(n) for n in ast.walk(_parse(path))}
    }
    assert users and all(u.startswith("gateway") for u in users)


def _top(node: ast.AST) -> str:
    if isinstance(node, ast.Import):
        return node.names[0].name.split(".")[0]
    if isinstance(node, ast.ImportFrom) and not node.level and node.module:
        return node.module.split(".")[0]
    return ""


def test_no_module_over_about_500_lines() -> None:
    # Every package's modules (issue: split by responsibility, ~500 lines at
    # most): gateway/, adapters/, registry/ and policies/.
    long = {
        str(path.relative_to(ROOT)): n
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 520
    }
    assert long == {}


def test_the_checker_sees_a_circle() -> None:
    # The checker itself: a circle through three modules is found, a chain is not.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
