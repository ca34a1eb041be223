"""`switchboard policy whatif FILE [--since 7d]`: what a candidate policy
would have decided for the calls the gateway recorded, before it is saved.

The running gateway replays the window a page at a time
(`POST /policies/whatif`); this adds the pages up, shows progress on
standard error while a large window is read, and prints the changes grouped
by principal, target and action, with example audit record ids (open one
with `switchboard audit --trace TRACE`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.cli.common import CliError, call, gateway_options, print_json
from policies.durations import DurationError, parse_duration
from policies.policy_file import PolicyError, read_policy_text

EXAMPLES = 3


def register(policy: Any) -> None:
    whatif = policy.add_parser(
        "whatif",
        help="replay recorded decisions under a candidate policy (nothing is saved)",
        description="Decide the calls the gateway recorded again under the policy in FILE "
        "and say which decisions would change: 'of the N decisions since ..., M would "
        "change', grouped by principal, target, skill/tool and before -> after. Decisions "
        "that depended on state no longer known (a rate limit, a coordination rule) are "
        "counted and named, not guessed. Admin only; read-only.",
    )
    whatif.add_argument("file", type=Path, help="the candidate policy (YAML or JSON)")
    whatif.add_argument(
        "--since", default="7d", help="window start: 7d, 12h, 30m, or an ISO 8601 time"
    )
    whatif.add_argument("--until", help="window end (default: now): as --since")
    whatif.add_argument("--page", type=int, default=10_000, help="records per request")
    whatif.add_argument("--json", action="store_true", help="print the added-up result as JSON")
    whatif.set_defaults(run=_policy_whatif)
    gateway_options(whatif)


def when(value: str, now: datetime) -> datetime:
    """``7d`` (before ``now``) or an ISO 8601 time (UTC when it names no zone)."""
    with contextlib.suppress(DurationError):
        try:
            return now - parse_duration(value)
        except OverflowError:
            raise CliError(f"{value!r} reaches before the year 1") from None
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"{value!r}: give 7d, 12h, 30m or an ISO 8601 time") from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def _policy_whatif(args: argparse.Namespace) -> int:
    try:
        document = read_policy_text(args.file)
    except PolicyError as exc:
        raise CliError(str(exc)) from None
    now = datetime.now(UTC)
    until = when(args.until, now) if args.until else now
    body: dict[str, Any] = {
        "document": document,
        "since": when(args.since, until).isoformat(),
        "until": until.isoformat(),
        "limit": args.page,
    }
    result: dict[str, Any] | None = None
    total: int | None = None
    while True:
        page = call(args, "POST", "/policies/whatif", json=body).json()
        total = page["total"] if total is None else total
        result = page if result is None else merge(result, page)
        if page["next_cursor"] is None:
            break
        read = result["read"]
        print(f"replayed {read:,} of {total or 0:,} records", file=sys.stderr, flush=True)
        body["cursor"] = page["next_cursor"]
    result["summary"] = result["summary"].replace(" (this page)", "")
    if args.json:
        print_json(result)
    else:
        show(result)
    return 0


def merge(into: dict[str, Any], page: dict[str, Any]) -> dict[str, Any]:
    """Two pages' results as one."""
    merged = dict(page)
    for name in ("decisions", "replayed", "changed", "read"):
        merged[name] = into[name] + page[name]
    merged["total"] = into["total"]
    merged["changes"] = _merged(into["changes"], page["changes"], _change_key)
    for name in ("unreplayable", "skipped"):
        merged[name] = _merged(into[name], page[name], lambda g: g["reason"])
    rules: dict[str, int] = {}
    for item in into["subject_to"] + page["subject_to"]:
        rules[item["rule"]] = rules.get(item["rule"], 0) + item["count"]
    merged["subject_to"] = [{"rule": k, "count": v} for k, v in sorted(rules.items())]
    merged["summary"] = _summary(merged, into["since"])
    return merged


def _change_key(group: dict[str, Any]) -> str:
    keys = ("principal", "target", "kind", "action", "before", "after")
    return json.dumps([group[k] for k in keys], sort_keys=True)


def _merged(a: list[dict[str, Any]], b: list[dict[str, Any]], key: Any) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for group in a + b:
        found = groups.get(key(group))
        if found is None:
            groups[key(group)] = dict(group)
            continue
        found["count"] += group["count"]
        found["examples"] = (found["examples"] + group["examples"])[:EXAMPLES]
    return sorted(groups.values(), key=lambda g: -int(g["count"]))


def _summary(result: dict[str, Any], since: str) -> str:
    said = f"of the {result['decisions']:,} decisions since {since}, "
    said += f"{result['changed']:,} would change"
    unknown = sum(g["count"] for g in result["unreplayable"])
    return said + (f"; {unknown:,} could not be replayed" if unknown else "")


def _verdict(verdict: dict[str, Any]) -> str:
    if verdict["decision"] != "allow":
        return str(verdict["decision"])
    return f"allow [{' '.join(verdict['scopes']) or 'no scopes'}]"


def show(result: dict[str, Any]) -> None:
    print(result["summary"])
    for change in result["changes"]:
        action = f" {change['kind']} {change['action']}" if change["action"] else ""
        ids = ", ".join(str(e["id"]) for e in change["examples"])
        print(
            f"  {change['count']:>6}  {change['principal']} -> {change['target']}{action}: "
            f"{_verdict(change['before'])} -> {_verdict(change['after'])}  (records {ids})"
        )
    for group in result["unreplayable"]:
        print(f"  not replayed: {group['count']:,} {group['reason']}")
    for item in result["subject_to"]:
        print(f"  then counted by {item['rule']}: {item['count']:,} allowed calls")
