"""`switchboard demo --scenario flow-crash`: a gateway killed with SIGKILL in the
middle of a flow, started again, and the run going on where it was.

Starts, on 127.0.0.1 and free ports: the sales desk (an A2A agent on the
official a2a-sdk, in this process, logging every message it receives) and a
gateway in a process of its own (embedded SQLite in a temp dir). It registers
the agent and a three-step flow -- quote, work for a few seconds, reply --
and starts a run as the user ``dana``. While the second step is in flight
(its task id recorded at the agent), it kills the gateway with SIGKILL,
starts it again on the same data, and follows the run to its end: the first
step is not run again, the second re-attaches to the agent's task, and the
agent has received each message exactly once. Exit status 0 when all of that
held, 1 when anything did not.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from gateway.demo.flow_agents import SalesDesk, sales_desk_app
from gateway.demo.process import GatewayProcess
from gateway.demo.servers import DemoError, Server, quiet_libraries

POLICY = """\
version: 1
agents:
  crash-demo:
    grant: [sales:quote]
  sales:
    require: [sales:quote]
    grant: [sales:quote]
"""
WORK_SECONDS = 4
FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "crash-demo",
    "name": "Quote, work a while, reply",
    "input": {
        "type": "object",
        "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer"}},
        "required": ["sku", "quantity"],
    },
    "steps": [
        {
            "id": "quote",
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: input.sku, quantity: input.quantity}",
        },
        {
            "id": "work",
            "call": {"agent": "sales", "skill": "work"},
            "input": f"{{seconds: `{WORK_SECONDS}`}}",
        },
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: 'ACME', total: steps.quote.output.total}",
        },
    ],
    "output": "steps.reply.text",
}


def run(data_dir: Path | None, out: Callable[[str], None], port: int | None = None) -> int:
    temp = None
    if data_dir is None:
        temp = Path(tempfile.mkdtemp(prefix="switchboard-flow-crash-"))
        data_dir = temp
    quiet_libraries()
    desk = SalesDesk()
    sales = Server("sales desk")
    gateway: GatewayProcess | None = None
    try:
        sales.start(sales_desk_app(sales.url, desk))
        policy = data_dir / "policy.yaml"
        data_dir.mkdir(parents=True, exist_ok=True)
        policy.write_text(POLICY)
        gateway = GatewayProcess(data_dir / "gateway", policy_file=policy, port=port)
        gateway.start()
        out(f"gateway  {gateway.url} (pid {gateway.pid}, SQLite in {gateway.data_dir})")
        out(f"sales    {sales.url} (A2A agent, official a2a-sdk)")
        return _play(gateway, desk, sales.url, out)
    finally:
        if gateway is not None:
            gateway.stop()
        sales.stop()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _play(
    gateway: GatewayProcess, desk: SalesDesk, sales_url: str, out: Callable[[str], None]
) -> int:
    with gateway.client("admin", "switchboard:admin") as admin:
        card_url = sales_url + "/.well-known/agent-card.json"
        _ok(admin.post("/agents", json={"card_url": card_url, "id": "sales"}))
        flow = _ok(admin.post("/flows", json=FLOW))["flow"]
    out(f"\nflow {flow['id']} v{flow['version']}: quote -> work ({WORK_SECONDS} s) -> reply")
    with gateway.client("dana", "sales:quote") as dana:
        run = _ok(
            dana.post("/flows/crash-demo/runs", json={"input": {"sku": "X-100", "quantity": 500}})
        )
    run_id = run["id"]
    out(f"dana starts run {run_id}")
    before = _wait(gateway, run_id, _work_in_flight, 30)
    task = _step(before, "work")["upstream_task_id"]
    out(f"  quote: {_step(before, 'quote')['state']}; work: in flight at the agent (task {task})")
    out(f"\nkill -9 {gateway.pid}  (the gateway dies mid-step: nothing of it runs on the way out)")
    gateway.kill()
    time.sleep(0.5)
    gateway.start()
    out(f"gateway started again (pid {gateway.pid}), same data: DBOS recovers the run")
    after = _wait(gateway, run_id, lambda r: r["state"] in ("completed", "failed"), 60)
    out(f"\nrun {run_id}: {after['state']}")
    for step in after["steps"]:
        took = f"{step['duration_ms']:.0f} ms" if step["duration_ms"] is not None else "-"
        extra = f" (task {step['upstream_task_id']})" if step["upstream_task_id"] else ""
        out(f"  {step['id']:<6} {step['state']:<10} attempts {step['attempts']}  {took}{extra}")
    counts = {skill: desk.count(skill) for skill in ("quote", "work", "reply")}
    out("the agent received: " + ", ".join(f"{k} x{v}" for k, v in counts.items()))
    checks = {
        "the run completed": after["state"] == "completed",
        "the step in flight re-attached to the same task": _step(after, "work")["upstream_task_id"]
        == task,
        "nothing was sent twice": counts == {"quote": 1, "work": 1, "reply": 1},
        "no step was attempted twice": all(s["attempts"] <= 1 for s in after["steps"]),
    }
    for what, held in checks.items():
        out(f"  [{'ok' if held else 'FAILED'}] {what}")
    if after["state"] == "completed":
        out(f"reply: {after['output']}")
    return 0 if all(checks.values()) else 1


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 300:
        raise DemoError(f"{response.request.method} {response.request.url}: {response.text}")
    body: dict[str, Any] = response.json()
    return body


def _step(run: dict[str, Any], step_id: str) -> dict[str, Any]:
    for step in run["steps"]:
        if step["id"] == step_id:
            found: dict[str, Any] = step
            return found
    return {"state": "not started", "upstream_task_id": None, "attempts": 0}


def _work_in_flight(run: dict[str, Any]) -> bool:
    return bool(_step(run, "work").get("upstream_task_id"))


def _wait(
    gateway: GatewayProcess, run_id: str, done: Callable[[dict[str, Any]], bool], seconds: float
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    with gateway.client("dana", "sales:quote") as dana:
        while True:
            run = _ok(dana.get(f"/flows/crash-demo/runs/{run_id}"))
            if done(run):
                return run
            if time.monotonic() > deadline:
                raise DemoError(f"run {run_id} is still {run['state']} after {seconds:g} s")
            time.sleep(0.1)
