"""`switchboard flows`: flow documents and their runs, over the HTTP API.

switchboard flows add quote.yaml            # register (or a new version)
switchboard flows list
switchboard flows show quote-flow [--versions | --version N]
switchboard flows run quote-flow --input '{"sku": "X-100", "quantity": 500}' [--wait]
switchboard flows runs quote-flow [RUN]      # the runs; one run, step by step
switchboard flows cancel quote-flow RUN
switchboard flows resume quote-flow RUN
switchboard flows answer quote-flow RUN north      # what the run's agent asks
switchboard flows fork quote-flow RUN --step reply [--input '{...}'] [--version 2] [--wait]
switchboard flows delete quote-flow [--cancel]   # admins; --cancel: its runs still going
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.cli.common import (
    CliError,
    call,
    call_answer,
    gateway_client,
    gateway_options,
    json_argument,
    print_json,
)
from policies.policy_file import line_of

_STOPPED = {"completed", "failed", "canceled", "rejected", "input_required"}
# The states of a step whose agent asks the run's user something.
_ASKING = {"input_required", "auth_required"}


def register(commands: Any) -> None:
    flows = commands.add_parser("flows", help="flows: durable multi-agent work").add_subparsers(
        title="flows commands"
    )
    add = flows.add_parser("add", help="register a flow document (YAML or JSON)")
    add.add_argument("file", type=Path, help="the flow definition, a YAML or JSON file")
    add.set_defaults(run=_add)
    listed = flows.add_parser("list", help="the flows you may run (admins: all)")
    listed.set_defaults(run=_list)
    show = flows.add_parser("show", help="one flow's current document")
    show.add_argument("flow", help="the flow's id")
    which = show.add_mutually_exclusive_group()
    which.add_argument("--versions", action="store_true", help="every version, newest first")
    which.add_argument(
        "--version", type=int, metavar="N", help="version N (admins: from the flow's versions)"
    )
    show.set_defaults(run=_show)
    run = flows.add_parser("run", help="start a run, as you")
    run.add_argument("flow", help="the flow's id")
    run.add_argument("--input", default="{}", help="the input, as JSON")
    run.add_argument("--input-file", type=Path, help="the input, from a JSON or YAML file")
    run.add_argument("--wait", action="store_true", help="until it ends or waits for a human")
    run.set_defaults(run=_run)
    runs = flows.add_parser("runs", help="a flow's runs, or one run step by step")
    runs.add_argument("flow", help="the flow's id")
    runs.add_argument("run_id", nargs="?", metavar="RUN", help="one run's id: its steps")
    runs.add_argument("--json", action="store_true", help="the whole record")
    runs.set_defaults(run=_runs)
    stop = []
    for verb, help_text in (
        ("cancel", "cancel a run"),
        ("resume", "go on with a cancelled or failed run from its last completed step"),
    ):
        sub = flows.add_parser(verb, help=help_text)
        sub.add_argument("flow", help="the flow's id")
        sub.add_argument("run_id", metavar="RUN", help="the run's id")
        sub.set_defaults(run=_change, verb=verb)
        stop.append(sub)
    answer, fork = _answer_and_fork(flows)
    remove = flows.add_parser("delete", help="remove a flow (admins); its runs' records stay")
    remove.add_argument("flow", help="the flow's id")
    remove.add_argument("--cancel", action="store_true", help="cancel its runs still going first")
    remove.set_defaults(run=_delete)
    for sub in (add, listed, show, run, runs, *stop, answer, fork, remove):
        gateway_options(sub)


def _answer_and_fork(flows: Any) -> tuple[Any, Any]:
    """`flows answer` (what a run's agent asks) and `flows fork` (a new run
    from a step of an ended one)."""
    answer = flows.add_parser("answer", help="answer what a run's agent asks (the run's user)")
    answer.add_argument("flow", help="the flow's id")
    answer.add_argument("run_id", metavar="RUN", help="the run's id")
    answer.add_argument("text", nargs="?", help="the answer, as text")
    answer.add_argument("--data", help="the answer's data, as a JSON object")
    answer.add_argument(
        "--step", help="the step whose question it answers (refused if another one asks now)"
    )
    answer.set_defaults(run=_answer)
    fork = flows.add_parser(
        "fork", help="a new run from a step of an ended run, the steps before it reused"
    )
    fork.add_argument("flow", help="the flow's id")
    fork.add_argument("run_id", metavar="RUN", help="the ended run's id")
    fork.add_argument("--step", required=True, help="the step to start from (top level)")
    fork.add_argument("--input", help="the new run's input, as JSON (the run's own if left out)")
    fork.add_argument("--input-file", type=Path, help="the input, from a JSON or YAML file")
    fork.add_argument("--version", type=int, help="the flow version to go on with")
    fork.add_argument("--wait", action="store_true", help="until it ends or waits for a human")
    fork.set_defaults(run=_fork)
    return answer, fork


def _add(args: argparse.Namespace) -> int:
    try:
        body = args.file.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    kind = "application/json" if args.file.suffix == ".json" else "application/yaml"
    root = _yaml_tree(args.file, body)
    with gateway_client(args) as client:
        try:
            sent = client.post("/flows", content=body, headers={"Content-Type": kind})
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the gateway at {client.base_url}: {exc}") from None
    if sent.status_code == 422:
        raise CliError(_problems_in(args.file, root, sent))
    answer = call_answer(sent).json()
    flow = answer["flow"]
    verb = "registered" if answer["changed"] else "unchanged:"
    print(f"{verb} {flow['id']} version {flow['version']} ({flow['name']})")
    return 0


def _yaml_tree(path: Path, body: bytes) -> Any:
    """The document's node tree (YAML is a superset of JSON), to say on which
    line a problem is; its syntax errors are said here, with file and line."""
    import yaml

    try:
        return yaml.compose(body.decode("utf-8"), Loader=yaml.SafeLoader)
    except UnicodeDecodeError:
        raise CliError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise CliError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None


def _problems_in(path: Path, root: Any, answer: httpx.Response) -> str:
    """The gateway's 422 as ``file:line: field: message`` lines."""
    try:
        problem = answer.json()
        errors = problem.get("errors") or []
        detail = problem.get("detail") or problem.get("title") or "invalid flow"
    except ValueError:
        return f"{path}: {answer.text}"
    lines = []
    for error in errors:
        field = str(error.get("field") or "")
        parts = [p for p in re.split(r"[.\[\]]+", field) if p]
        lines.append(f"{path}:{line_of(root, parts)}: {field or '(top)'}: {error.get('message')}")
    return "\n".join(lines) or f"{path}: {detail}"


def _list(args: argparse.Namespace) -> int:
    found = call(args, "GET", "/flows").json()
    for flow in found:
        steps = len(flow["document"].get("steps", []))
        print(f"{flow['id']:<32} v{flow['version']:<4} {steps:>3} steps  {flow['name']}")
    if not found:
        print("no flows")
    return 0


def _show(args: argparse.Namespace) -> int:
    if args.version is None:
        path = f"/flows/{args.flow}" + ("/versions" if args.versions else "")
        print_json(call(args, "GET", path).json())
        return 0
    versions = call(args, "GET", f"/flows/{args.flow}/versions").json()
    found = next((v for v in versions if v.get("version") == args.version), None)
    if found is None:
        have = ", ".join(str(v.get("version")) for v in versions) or "none"
        raise CliError(f"flow {args.flow} has no version {args.version} (it has: {have})")
    print_json(found)
    return 0


def _input(args: argparse.Namespace) -> Any:
    import yaml

    try:
        if args.input_file is not None:
            return yaml.safe_load(args.input_file.read_text())
        return json.loads(args.input)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise CliError(f"the input is not JSON: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    run = call(args, "POST", f"/flows/{args.flow}/runs", json={"input": _input(args)}).json()
    print(f"started {run['id']} (trace {run['trace_id']})")
    return _waited(args, run)


def _fork(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"step": args.step}
    if args.input is not None or args.input_file is not None:
        body["input"] = _input(args)
    if args.version is not None:
        body["version"] = args.version
    run = call(args, "POST", f"/flows/{args.flow}/runs/{args.run_id}/fork", json=body).json()
    print(f"forked {run['id']} from {args.run_id} at step {args.step} (trace {run['trace_id']})")
    return _waited(args, run)


def _waited(args: argparse.Namespace, run: dict[str, Any]) -> int:
    if not args.wait:
        return 0
    while run["state"] not in _STOPPED:
        time.sleep(0.5)
        run = call(args, "GET", f"/flows/{args.flow}/runs/{run['id']}").json()
    _print_run(run)
    return 0 if run["state"] in ("completed", "input_required") else 1


def _runs(args: argparse.Namespace) -> int:
    if args.run_id is None:
        found = call(args, "GET", f"/flows/{args.flow}/runs").json()
        for run in found:
            print(
                f"{run['id']:<38} {run['state']:<15} {run['created_at'][:19]}  "
                f"{run['user']['subject']}  {run['current_step'] or '-'}"
            )
        if not found:
            print("no runs")
        return 0
    run = call(args, "GET", f"/flows/{args.flow}/runs/{args.run_id}").json()
    if args.json:
        print_json(run)
    else:
        _print_run(run)
    return 0


def _print_run(run: dict[str, Any]) -> None:
    grant = run.get("grant") or {}
    print(f"run {run['id']} of {run['flow_id']} v{run['flow_version']}: {run['state']}")
    print(f"  for {run['user']['subject']}, trace {run['trace_id']}")
    if run.get("forked_from"):
        print(f"  forked from run {run['forked_from']} at step {run['fork_step']}")
    if grant:
        revoked = f", revoked by {grant['revoked_by']}" if grant.get("revoked_at") else ""
        print(
            f"  grant {grant['id']}: {' '.join(grant['scopes']) or '(no scopes)'}; "
            f"acts as {' -> '.join(grant['actors'])}; until {grant['expires_at'][:19]}{revoked}"
        )
    for step in run["steps"]:
        took = f"{step['duration_ms']:.0f} ms" if step["duration_ms"] is not None else ""
        indent = "    " if step["parent"] else "  "
        target = step["target"] or ""
        extra = f" task {step['upstream_task_id']}" if step["upstream_task_id"] else ""
        extra += f" approval {step['approval_id']}" if step["approval_id"] else ""
        extra += _tokens(step.get("usage"))
        extra += f" reused from {step['reused_from']}" if step.get("reused_from") else ""
        retries = f" retries {step['retries']}" if step["retries"] else ""
        print(
            f"{indent}{step['id']:<16} {step['state']:<11} {target:<28} {took:>8}{retries}{extra}"
        )
        if step["error"] and step["state"] != "skipped":
            print(f"{indent}  {step['error']}")
        _print_question(run, step, indent)
    if run.get("usage"):
        print(f"  usage:{_tokens(run['usage'])}")
    if run["state"] == "completed":
        print("output:", json.dumps(run["output"]))
    elif run["error"]:
        print("error:", run["error"], file=sys.stderr)


def _tokens(usage: dict[str, Any] | None) -> str:
    if not usage:
        return ""
    said = f" {usage['input_tokens']}+{usage['output_tokens']} tokens"
    if usage.get("cost") is not None:
        said += f" {usage['cost']} {usage.get('currency') or ''}".rstrip()
    return said


def _answer(args: argparse.Namespace) -> int:
    reply: dict[str, Any] = {}
    if args.text:
        reply["text"] = args.text
    if args.data is not None:
        reply["data"] = json_argument(args.data, "--data")
    if not reply:
        raise CliError("say the answer: as text, or --data '{...}'")
    if args.step:
        reply["step"] = args.step
    url = f"/flows/{args.flow}/runs/{args.run_id}/answer"
    said = call(args, "POST", url, json=reply).json()
    print(f"answered step {said['step']} of {said['run']}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    query = "?cancel=true" if args.cancel else ""
    call(args, "DELETE", f"/flows/{args.flow}{query}")
    print(f"removed {args.flow}")
    return 0


def _change(args: argparse.Namespace) -> int:
    run = call(args, "POST", f"/flows/{args.flow}/runs/{args.run_id}/{args.verb}").json()
    print(f"{run['state']} {run['id']}")
    return 0


def _print_question(run: dict[str, Any], step: dict[str, Any], indent: str) -> None:
    """The question a step's agent asks, and how to answer it (the step's
    output holds it while the run waits for the answer)."""
    asked = step.get("output")
    if step["state"] not in _ASKING or not isinstance(asked, dict) or "question" not in asked:
        return
    said = asked.get("question") or f"{asked.get('agent') or 'the agent'} needs your answer"
    print(f"{indent}  asks: {said}")
    if asked.get("data") is not None:
        print(f"{indent}  with: {json.dumps(asked['data'])}")
    print(
        f"{indent}  answer: switchboard flows answer {run['flow_id']} {run['id']} "
        f'"ANSWER" --step {step["id"]}'
    )
