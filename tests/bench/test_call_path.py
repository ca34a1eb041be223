"""`bench.call_path` measures what it says: the files a call runs through,
its own request's only (a test of the tool, and of the path's ends)."""

from __future__ import annotations

from bench.call_path import A2A, MCP, measure


def test_each_call_is_traced_from_its_door_through_the_core_to_its_record() -> None:
    trails = measure(calls=1)
    for kind, door, adapter in (
        (A2A, "gateway/a2a/front.py", "adapters/a2a_tolerance.py"),
        (MCP, "gateway/mcp/front.py", "adapters/mcp_passthrough.py"),
    ):
        (trail,) = trails[kind]
        files = [path for path, _ in trail]
        assert files, kind
        # The door first, then the core's send, then the adapter, then the audit.
        order = [door, "gateway/delegation/delegate.py", adapter, "gateway/delegation/audit.py"]
        firsts = [files.index(path) for path in order]
        assert firsts == sorted(firsts), (kind, dict(zip(order, firsts, strict=True)))
        # Only the request's own work: the periodic jobs are not in it.
        assert not any(path.endswith("storage/periodic.py") for path in files), kind
