"""The A2A TCK against its own reference agent, directly and through the
gateway, compared test by test.

    python -m conformance.a2a --tck-dir PATH          # or: make conformance-a2a TCK_DIR=PATH
    python -m conformance.a2a --tck-dir PATH --push   # the agent sends push notifications
    python -m conformance.a2a --tck-dir PATH --out DIR  # keep both junit files and the logs
    python -m conformance.a2a --tck-dir PATH -- -k push  # more arguments for the TCK's pytest

The TCK (`a2aproject/a2a-tck`, branch `1.0-dev`) is on no package registry,
so it is never fetched here: PATH is a checkout of it. Its dependencies go
into a virtualenv of its own in the cache directory (`.cache/conformance`, or
`$SWITCHBOARD_CONFORMANCE_CACHE`). The system under test is the TCK's reference
agent, hosted on the a2a-sdk installed here (`conformance.tck_agent`). Through
the gateway means: `switchboard serve --dev`, the agent registered as `tck`,
the TCK pointed at `/a2a/tck`, and a pytest plugin adding the bearer token it
cannot send itself (`conformance.tck_auth`).

Exit 1 when a test that passes directly does not pass through the gateway.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from conformance.mcp import CACHE, ROOT, free_port, process
from gateway.demo.process import GatewayProcess
from policies.scopes import ADMIN_SCOPE

TRANSPORTS = "jsonrpc,http_json,grpc"
AGENT_ID = "tck"
RUN_TIMEOUT = 1800  # seconds, each run; a whole run takes a few minutes
Results = dict[str, str]  # test id -> passed | failed | skipped
# Tests known to pass directly and not through the gateway, each with the
# issue that tracks it. The run fails on any other such test, and on a known
# one that passes again (so this list only ever shrinks, on purpose).
KNOWN_GAPS: dict[str, str] = {}


def ensure_tck(tck_dir: Path) -> Path:
    """The TCK's own virtualenv, with the checkout installed (editable); made
    again when the checkout or its dependencies change. Its Python."""
    venv = CACHE / "a2a-tck-venv"
    python = venv / "bin" / "python"
    marker = venv / "installed.txt"
    pyproject = (tck_dir / "pyproject.toml").read_bytes()
    wanted = f"{tck_dir} {hashlib.sha256(pyproject).hexdigest()}"
    if not python.exists() or not marker.exists() or marker.read_text() != wanted:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-e", str(tck_dir)],
            check=True,
        )
        marker.write_text(wanted)
    return python


def run_tck(
    python: Path, tck_dir: Path, url: str, junit: Path, env: dict[str, str], extra: list[str]
) -> Results:
    """`run_tck.py --sut-host URL --transport jsonrpc,http_json`, its junit
    report written to ``junit`` (the TCK's own reports stay in its reports/).
    Its webhook receiver is named by address: `localhost` may resolve to ::1,
    where the receiver does not listen."""
    log = junit.with_suffix(".log")
    with log.open("w") as out:
        subprocess.run(
            [
                *(str(python), "run_tck.py", "--sut-host", url, "--transport", TRANSPORTS),
                *("--", f"--junitxml={junit}", "-p", "conformance.tck_auth"),
                *("--webhook-host", "127.0.0.1", *extra),
            ],
            cwd=tck_dir,
            env={**env, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT,
            check=False,  # it exits non-zero when a test fails; the report says which
        )
    if not junit.exists():
        raise SystemExit(f"the TCK wrote no report for {url}; see {log}")
    return read_junit(junit)


def read_junit(path: Path) -> Results:
    """One outcome per test: failed (a failure or an error), skipped (xfail
    included, as pytest writes it), else passed."""
    results: Results = {}
    # Our own TCK run's report, not untrusted input.
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314
        test = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            results[test] = "failed"
        elif case.find("skipped") is not None:
            results[test] = results.get(test, "skipped")
        else:
            results.setdefault(test, "passed")
    return results


def tally(results: Results) -> tuple[int, int, int]:
    outcomes = list(results.values())
    return outcomes.count("passed"), outcomes.count("failed"), outcomes.count("skipped")


@dataclass(frozen=True)
class Difference:
    test: str
    direct: str
    gateway: str


def differences(direct: Results, through: Results) -> list[Difference]:
    return [
        Difference(test, direct.get(test, "missing"), through.get(test, "missing"))
        for test in sorted(direct.keys() | through.keys())
        if direct.get(test) != through.get(test)
    ]


def register(gateway: GatewayProcess, agent_url: str) -> str:
    """The agent registered as `tck`; a token to call it with."""
    with gateway.client("admin", ADMIN_SCOPE) as admin:
        card_url = agent_url + "/.well-known/agent-card.json"
        response = admin.post("/agents", json={"card_url": card_url, "id": AGENT_ID})
        if response.status_code != 201:
            raise SystemExit(f"registering the agent failed: {response.text}")
    return gateway.token("tck", "", ttl=RUN_TIMEOUT * 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tck-dir", default=os.environ.get("TCK_DIR", ""))
    parser.add_argument("--push", action="store_true", help="a push-capable reference agent")
    parser.add_argument("--out", type=Path, help="keep both junit files and the logs here")
    parser.add_argument("pytest_args", nargs="*", help="after --: more for the TCK's pytest")
    args = parser.parse_args(argv)
    if not args.tck_dir:
        print(
            "conformance-a2a: skipped: the A2A TCK is not on a package registry;"
            " give TCK_DIR=path/to/a2a-tck (branch 1.0-dev)"
        )
        return 0
    tck_dir = Path(args.tck_dir).resolve()
    if not (tck_dir / "run_tck.py").exists():
        print(f"conformance-a2a: {tck_dir} is not an A2A TCK checkout (no run_tck.py)")
        return 2
    python = ensure_tck(tck_dir)
    out = args.out or Path(tempfile.mkdtemp(prefix="switchboard-tck-"))
    out.mkdir(parents=True, exist_ok=True)
    # The gateway (GatewayProcess passes it this environment) and the agent
    # run on their own data alone, whatever SWITCHBOARD_* the shell has set.
    for name in [k for k in os.environ if k.startswith("SWITCHBOARD_")]:
        del os.environ[name]
    env = dict(os.environ)
    port, agent_grpc, gateway_grpc = free_port(), free_port(), free_port()
    agent_url = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        agent = [sys.executable, "-m", "conformance.tck_agent", str(tck_dir), str(port)]
        agent += ["--grpc-port", str(agent_grpc)]
        stack.enter_context(
            process(
                agent + (["--push"] if args.push else []),
                out / "agent.log",
                agent_url + "/.well-known/agent-card.json",
                {**env, "PYTHONPATH": str(ROOT)},
            )
        )
        gateway = GatewayProcess(
            out / "gateway-data",
            log=out / "gateway.log",
            settings={"a2a_grpc_port": gateway_grpc},
        )
        stack.callback(gateway.stop)
        gateway.start()
        token = register(gateway, agent_url)
        extra = args.pytest_args
        direct = run_tck(python, tck_dir, agent_url, out / "tck-direct.xml", env, extra)
        through = run_tck(
            python,
            tck_dir,
            f"{gateway.url}/a2a/{AGENT_ID}",
            out / "tck-gateway.xml",
            {
                **env,
                "SWITCHBOARD_TCK_TOKEN": token,
                "SWITCHBOARD_TCK_ORIGIN": gateway.url,
                "SWITCHBOARD_TCK_GRPC": f"127.0.0.1:{gateway_grpc}",
                "SWITCHBOARD_TCK_TENANT": AGENT_ID,
            },
            extra,
        )
    print(f"A2A TCK, --transport {TRANSPORTS}{', push-capable agent' if args.push else ''}")
    print("path      passed  failed  skipped")
    for name, results in (("direct", direct), ("gateway", through)):
        passed, failed, skipped = tally(results)
        print(f"{name:8}  {passed:>6}  {failed:>6}  {skipped:>7}")
    found = differences(direct, through)
    for d in found:
        print(f"  {d.test}: {d.direct} directly, {d.gateway} through the gateway")
    known = KNOWN_GAPS
    lost = {d.test for d in found if d.direct == "passed"}
    regressions = sorted(lost - known.keys())
    healed = sorted(known.keys() - lost)
    print(f"results: {out}")
    for test, why in known.items():
        print(f"known gap, {test} -- {why}")
    if healed:
        print("known gaps that pass now (remove them from KNOWN_GAPS):", *healed, sep="\n  ")
    if regressions:
        print("passes directly, not through the gateway:", *regressions, sep="\n  ")
    if regressions or healed:
        return 1
    print("every other test that passes directly passes through the gateway")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
