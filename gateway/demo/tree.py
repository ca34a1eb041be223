"""The delegation tree of a story, drawn from its audit records.

Each record says who acted (the actor chain, oldest first: the user's client,
then the agents), for which target, and what was decided. A hop is the path
``agents that acted + target``; hops nest by that path, so the tree is the
delegation itself, however many calls each hop made. Pure: records in, lines
out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Record = Mapping[str, Any]


@dataclass
class Hop:
    path: tuple[str, ...]
    records: list[Record] = field(default_factory=list)
    children: dict[str, Hop] = field(default_factory=dict)


def build(records: Iterable[Record]) -> Hop:
    """The tree of hops under a root hop (path ()), records oldest first."""
    root = Hop(())
    for record in sorted(records, key=lambda r: (str(r.get("time", "")), r.get("id", 0))):
        actors = list(record.get("actors") or [])
        path = (*actors[1:], str(record.get("target", "?")))
        node = root
        for depth, name in enumerate(path, start=1):
            node = node.children.setdefault(name, Hop(path[:depth]))
        node.records.append(record)
    return root


def _chain(record: Record) -> str:
    actors = list(record.get("actors") or [])
    user = str(record.get("subject", "?"))
    # The user's own app, if any (a dev token has none: the chain starts with the user).
    via = f"{user} (via {actors[0]})" if actors and actors[0] != user else user
    return " -> ".join([via, *actors[1:], str(record.get("target", "?"))])


def _record_lines(record: Record) -> list[str]:
    decision = str(record.get("decision", "?")).upper()
    action = record.get("action")
    head = f"{record.get('event', '?')}{f' {action}' if action else ''}: {decision}"
    outcome = record.get("outcome")
    if outcome and outcome not in ("ok", "denied"):
        head += f" ({outcome})"
    lines = [head, f"  chain:   {_chain(record)}"]
    granted = record.get("scopes_granted") or []
    if record.get("decision") == "allow":
        lines.append(f"  granted: {' '.join(granted) if granted else '(none)'}")
    for reason in record.get("reasons") or []:
        lines.append(f"  why:     {reason}")
    detail = record.get("detail")
    if detail and record.get("decision") == "allow" and outcome != "ok":
        lines.append(f"  detail:  {detail}")
    return lines


def render(records: Sequence[Record]) -> list[str]:
    """The tree as text lines: each hop, then what was decided there."""
    root = build(records)
    users = sorted({str(r.get("subject", "?")) for r in records})
    lines = [", ".join(users) or "(no records)"]

    def walk(hop: Hop, prefix: str) -> None:
        children = list(hop.children.values())
        for n, child in enumerate(children):
            last = n == len(children) - 1
            lines.append(f"{prefix}{'└── ' if last else '├── '}{child.path[-1]}")
            inner = prefix + ("    " if last else "│   ")
            bar = "│   " if child.children else "    "
            for record in child.records:
                lines.extend(f"{inner}{bar}{line}" for line in _record_lines(record))
            walk(child, inner)

    walk(root, "")
    return lines
