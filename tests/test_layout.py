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
# from its own layer and the layers below it, never above. The doors (A2A,
# /mcp, flows) are one layer of peers: none imports another; what two of them
# share lives below them (the agents' handlers, the MCP federation, the core).
# cli -> demo -> app -> console -> api -> {a2a | mcp | flows} -> federation -> agents
# -> observability -> delegation -> connections -> http -> storage -> settings -> client.
DOORS = ("gateway.a2a", "gateway.mcp", "gateway.flows")
GATEWAY_LAYERS: tuple[str | tuple[str, ...], ...] = (
    "gateway.compat",
    "gateway.client",
    "gateway.settings",
    "gateway.storage",
    "gateway.http",
    "gateway.connections",
    "gateway.delegation",
    "gateway.observability",
    "gateway.audit_export",
    "gateway.agents",
    "gateway.federation",
    DOORS,
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


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _layer(module: str) -> int | None:
    for index, layer in enumerate(GATEWAY_LAYERS):
        if any(_within(module, prefix) for prefix in _prefixes(layer)):
            return index
    return None


def _prefixes(layer: str | tuple[str, ...]) -> tuple[str, ...]:
    return (layer,) if isinstance(layer, str) else layer


def _door(module: str) -> str | None:
    return next((door for door in DOORS if _within(module, door)), None)


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


def test_no_door_imports_another() -> None:
    crossing = [
        f"{module} -> {dep}"
        for module, deps in _graph().items()
        for dep in deps
        if _door(module) is not None and _door(dep) not in (None, _door(module))
    ]
    assert crossing == []


# What only the delegation core may touch: the upstream call's breaker and
# retries (`gateway.delegation.delegate` makes every upstream call under them,
# and names what a door needs of them: `BreakerOpen`, `Failure`). Reading the
# breakers' states to show them is not making a call: the readers named here.
CORE_ONLY = {
    # The audit export waits between deliveries of the gateway's own records
    # by the same jittered formula (`delays`); it sends nothing on anyone's behalf.
    "gateway.delegation.retry": frozenset({"gateway.audit_export.exporter"}),
    "gateway.delegation.breaker": frozenset({"gateway.observability.metrics", "gateway.api.state"}),
}


def test_only_the_core_retries_and_trips_breakers() -> None:
    users = [
        f"{module} -> {dep}"
        for module, deps in _graph().items()
        for dep, readers in CORE_ONLY.items()
        if dep in deps and not _within(module, "gateway.delegation") and module not in readers
    ]
    assert users == []


def test_only_the_core_writes_the_audit_log() -> None:
    # Everything recorded goes through the core (`Delegations.record`,
    # `.record_event`, `Delegate.record`): never `<...>.audit.record(...)`.
    writers = [
        f"{module}:{node.lineno}"
        for module, path in _modules().items()
        if not _within(module, "gateway.delegation")
        for node in ast.walk(_parse(path))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "record"
        and getattr(node.func.value, "attr", getattr(node.func.value, "id", "")) == "audit"
    ]
    assert writers == []


def test_only_the_core_marks_work_as_the_cores() -> None:
    # The run-time half (`adapters.core_check`): adapters and the audit writer
    # check that they run under the mark `Delegate` sets; a module that set
    # it itself would pass that check without going through the core. An
    # exemption (`outside_a_call`) is named and listed in docs/architecture.md.
    marking = {
        module
        for module, path in _modules().items()
        for node in ast.walk(_parse(path))
        if isinstance(node, ast.Name | ast.alias)
        and (node.id if isinstance(node, ast.Name) else node.name) == "inside_the_core"
    }
    assert marking == {"gateway.delegation.delegate"}


def test_below_the_doors_errors_are_the_domains_not_a_protocols() -> None:
    # The core and the layers below the doors raise domain errors; each door
    # maps them to its protocol (an HTTP problem, a JSON-RPC error, a gRPC
    # status, an MCP error). None of them builds an HTTP problem.
    below = ("gateway.storage", "gateway.delegation", "gateway.agents", "gateway.federation")
    modules = _modules()
    found = [
        module
        for module, path in modules.items()
        if any(_within(module, layer) for layer in below)
        and "gateway.http.problems" in set(_imports(module, path, modules))
    ]
    assert found == []


def _private_members() -> dict[str, set[str]]:
    """Each module's classes' private members (methods and class attributes
    whose name starts with one underscore), a `Protocol`'s excepted: a
    protocol that declares another class's private method is a way round
    this check, not a definition."""
    found: dict[str, set[str]] = {}
    for name, path in _modules().items():
        names = found.setdefault(name, set())
        for node in ast.walk(_parse(path)):
            if not isinstance(node, ast.ClassDef) or any(
                getattr(base, "id", getattr(base, "attr", "")) == "Protocol" for base in node.bases
            ):
                continue
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(member.name)
                elif isinstance(member, ast.Assign):
                    names.update(t.id for t in member.targets if isinstance(t, ast.Name))
                elif isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name):
                    names.add(member.target.id)
        found[name] = {n for n in names if n.startswith("_") and not n.startswith("__")}
    return found


NAMED_TUPLE_API = frozenset({"_replace", "_asdict", "_fields", "_make", "_mapping"})


def _private_uses(members: dict[str, set[str]]) -> list[str]:
    """Where a module reaches another module's private names: imported by
    name, or as an attribute (``thing._name``, other than ``self``'s and
    ``cls``'s) that only another module's classes define. A library's own
    private attributes (``request._json``) are the library's business, and a
    named tuple's ``_replace`` / ``_asdict`` are its public API."""
    uses = []
    for module, path in _modules().items():
        elsewhere = {n for other, names in members.items() if other != module for n in names}
        elsewhere -= members.get(module, set())
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PACKAGES:
                uses += [
                    f"{module}: from {node.module} import {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
            elif isinstance(node, ast.Attribute) and node.attr in elsewhere - NAMED_TUPLE_API:
                owner = node.value
                if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                    continue
                if isinstance(owner, ast.Call) and getattr(owner.func, "id", "") == "super":
                    continue
                uses.append(f"{module}:{node.lineno}: .{node.attr}")
    return uses


def test_no_module_uses_another_modules_private_names() -> None:
    assert _private_uses(_private_members()) == []


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


def test_the_gateways_unit_tests_mirror_its_source_tree() -> None:
    """`tests/gateway/<package>/` tests `gateway/<package>/`: a reader finds a
    module's tests where the module is (the app's own, `gateway/app/`, at
    the top)."""
    tests = ROOT / "tests" / "gateway"
    strays = [
        d.name
        for d in tests.iterdir()
        if d.is_dir() and d.name != "__pycache__" and not (ROOT / "gateway" / d.name).is_dir()
    ]
    assert strays == [], f"tests/gateway/{strays} mirror no package of gateway/"
    for d in tests.iterdir():
        if d.is_dir() and d.name != "__pycache__":
            assert (d / "__init__.py").is_file(), f"tests/gateway/{d.name} is not a package"
