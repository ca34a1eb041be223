"""Fault injection under load: two replicas behind a round-robin balancer, on
the suite's own PostgreSQL cluster and redis-server (`tests/support/faults.py`).

Each test breaks one thing while callers keep sending SendMessage (to an A2A
agent through the pass-through, and to a gateway-run OpenAI-compatible
agent), then checks the invariants of `Faults.check` -- no HTTP 500, every
answer audited, every task answered recorded as told, nothing left
non-terminal past the fault's documented bound (docs/operations.md) -- and
what that fault promises on top:

* kill -9 of a replica mid-task: its runs are taken over within lease + poll;
* PostgreSQL stopped 10 s: callers get 503 with Retry-After, nothing is lost;
  a blocking call whose outcome cannot be written yet is answered 503 at
  once, not held for the outage;
* PostgreSQL stopped past the replicas' stale window while each replica's
  flow runs wait: every replica's row looks stale once it is back, but both
  are alive -- the first back does not take the other's runs;
* Redis stopped and restarted empty: readiness names it, token exchange
  goes on (it keeps nothing there), and a used assertion is refused after;
* an upstream killed mid-stream: its task fails within the reconcile bound;
* an upstream that hangs: the caller gets the timeout in its protocol.

`make faults` runs this directory alone; `make test` includes it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from policies.exchange import ACCESS_TOKEN_TYPE, JWT_BEARER_ASSERTION
from policies.keys import ec_public_jwk
from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.support import waiting
from tests.support.a2a_agents import worker_agent
from tests.support.faults import (
    HEARTBEAT,
    POLL,
    RECONCILE_MAX,
    SLACK,
    STALE,
    UPSTREAM_TIMEOUT,
    Faults,
    Load,
    fault_cluster,
)

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    with fault_cluster(tmp_path_factory.mktemp("faults")) as made:
        yield made


@pytest.fixture(autouse=True)
def settled(faults: Faults) -> Iterator[None]:
    """Each test starts from a quiet cluster: both replicas up, nothing held."""
    for replica in faults.replicas:
        if replica.process is None or replica.process.poll() is not None:
            replica.start()
    faults.chat_does.release.clear()
    faults.chat_does.later.clear()
    yield
    faults.chat_does.release.set()
    faults.chat_does.later.set()


def _held(faults: Faults, count: int) -> list[str]:
    """Gateway-run tasks waiting on the upstream (answered at once, working)."""
    ids = []
    for n in range(count):
        answer = faults.send("chat", f"hold {n}", configuration={"returnImmediately": True})
        assert answer.status == 200 and answer.body is not None, answer
        ids.append(answer.body["result"]["task"]["id"])
    return ids


def _state(faults: Faults, task_id: str) -> str:
    rows = faults.query("SELECT state FROM a2a_tasks WHERE task_id = $1", task_id)
    return str(rows[0]["state"]) if rows else "missing"


def test_a_replica_killed_mid_task(faults: Faults) -> None:
    held = _held(faults, 6)  # round robin: some on each replica
    waiting.wait_for(
        lambda: all(_state(faults, t) == "TASK_STATE_WORKING" for t in held),
        seconds=10,
        every=0.1,
        what=lambda: [_state(faults, t) for t in held],
    )
    rows = faults.query(
        "SELECT task_id, runner FROM gateway_runs WHERE task_id = ANY($1::text[])", held
    )
    by_runner: dict[str, set[str]] = {}
    for row in rows:
        by_runner.setdefault(row["runner"], set()).add(row["task_id"])
    assert len(by_runner) == 2, by_runner  # each replica runs some
    with Load(faults) as load:
        time.sleep(1)  # a second of load before the fault: answers from before it
        faults.replicas[0].kill()
        killed = time.monotonic()

        # The killed replica's runs are taken over by the other once its row
        # is stale (and a poll); not idempotent, they fail saying so. The living one's go on.
        def taken_over() -> dict[str, str] | None:
            states = {t: _state(faults, t) for t in held}
            failed = {t for t, s in states.items() if s == "TASK_STATE_FAILED"}
            return states if failed in by_runner.values() else None

        states = waiting.wait_for(
            taken_over,
            seconds=STALE + HEARTBEAT + POLL + SLACK,
            every=0.2,
            what=lambda: ({t: _state(faults, t) for t in held}, by_runner),
        )
        failed = {t for t, s in states.items() if s == "TASK_STATE_FAILED"}
        time.sleep(1)  # and a second of load after it: answers from after it
    alive = set(held) - failed
    assert all(states[t] == "TASK_STATE_WORKING" for t in alive), states
    for task_id in failed:
        told = faults.rpc("chat", "GetTask", {"id": task_id})["result"]
        assert "interrupted" in json.dumps(told["status"]), told
    faults.chat_does.release.set()
    faults.wait_until_settled(within=SLACK)
    assert all(_state(faults, t) == "TASK_STATE_COMPLETED" for t in alive)
    faults.check(load.answers, unaudited_before=killed)


def test_postgres_stopped_for_ten_seconds(faults: Faults) -> None:
    with Load(faults) as load:
        time.sleep(1)  # a second of load before the fault
        faults.pg.stop()
        stopped = time.monotonic()
        time.sleep(10)  # the fault: ten seconds without the database, under load
        faults.pg.start()
        restarted = time.monotonic()
        for replica in faults.replicas:
            replica.wait_ready(within=30)
        recovered = time.monotonic()
        time.sleep(5)  # five seconds of load after: every answer must be a 200
    during = [a for a in load.answers if stopped + 1 < a.at < restarted]
    assert any(a.status == 503 for a in during), [a.status for a in during][:20]
    after = [a for a in load.answers if a.at > recovered + 2]
    assert after and all(a.status == 200 for a in after), [a.status for a in after]
    faults.wait_until_settled(within=SLACK)
    faults.check(load.answers)


def test_postgres_stopped_under_a_blocking_call(faults: Faults) -> None:
    """A blocking SendMessage whose upstream answers while the database is
    down is answered 503 with Retry-After at once, not after the outage (the
    run keeps writing its outcome, found with GetTask once it is)."""
    answers: list[Any] = []
    sent_before = faults.chat_does.calls.get("hold 1", 0)  # earlier tests send it too
    caller = threading.Thread(target=lambda: answers.append(faults.send("chat", "hold 1")))
    caller.start()

    def held_at_the_upstream() -> list[Any] | None:
        # The call is at the upstream (its row alone is not enough: a run not
        # sent yet waits for the database before it sends, and is no blocking
        # call under which the database stopped), and its run row is there.
        if faults.chat_does.calls.get("hold 1", 0) <= sent_before:
            return None
        return faults.query("SELECT task_id FROM gateway_runs") or None

    (run,) = waiting.wait_for(held_at_the_upstream, seconds=SLACK, what="the call held upstream")
    faults.pg.stop()
    try:
        faults.chat_does.release.set()
        caller.join(SLACK)  # the database stays down meanwhile
        assert not caller.is_alive(), "the caller was held for the outage"
    finally:
        faults.pg.start()
    (answer,) = answers
    assert answer.status == 503 and answer.retry_after, answer
    assert "not recorded yet" in json.dumps(answer.body), answer.body
    for replica in faults.replicas:
        replica.wait_ready(within=30)
    faults.wait_until_settled(within=SLACK)
    assert _state(faults, run["task_id"]) == "TASK_STATE_COMPLETED"
    told = faults.rpc("chat", "GetTask", {"id": run["task_id"]})["result"]
    assert told["status"]["state"] == "TASK_STATE_COMPLETED", told


def _agent_key(faults: Faults) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ec_public_jwk(key.public_key()), "kid": "worker-1"}
    body = {"method": "private_key_jwt", "jwks": {"keys": [jwk]}}
    admin = faults.token("admin", ADMIN_SCOPE)
    answer = httpx.post(
        f"{faults.url}/agents/worker/credentials",
        json=body,
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
        verify=client_tls(),
    )
    assert answer.status_code == 201, answer.text
    return key


def _exchange(faults: Faults, assertion: str) -> httpx.Response:
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": faults.token(),
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "client_assertion_type": JWT_BEARER_ASSERTION,
        "client_assertion": assertion,
        "audience": "chat",  # the agent the worker hands on to
    }
    return httpx.post(faults.url + "/oauth/token", data=form, timeout=30, verify=client_tls())


def test_redis_stopped_and_restarted_empty(faults: Faults) -> None:
    key = _agent_key(faults)
    now = int(time.time())
    claims = {
        "iss": "worker",
        "sub": "worker",
        "aud": faults.url + "/oauth/token",
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
    }
    assertion = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "worker-1"})
    first = _exchange(faults, assertion)
    assert first.status_code == 200, first.text
    with Load(faults) as load:
        time.sleep(0.5)  # half a second of load before the fault
        faults.redis.stop()
        fresh = {**claims, "jti": uuid.uuid4().hex}
        second = jwt.encode(fresh, key, algorithm="ES256", headers={"kid": "worker-1"})
        # Token exchange keeps nothing in Redis (replay ids are in the
        # database): it goes on working, and fails closed on a replay.
        during = _exchange(faults, second)
        assert during.status_code == 200, during.text
        assert _exchange(faults, second).status_code in (400, 401)
        ready = [
            httpx.get(r.url + "/readyz", timeout=10, verify=client_tls()) for r in faults.replicas
        ]
        assert all(r.status_code == 503 and "redis" in r.text for r in ready)
        faults.redis.start()  # no persistence: it comes back empty
        time.sleep(1)  # a second of load after it
    # The used assertions are refused after the restart: replay protection
    # is not kept in Redis (docs/operations.md).
    for used in (assertion, second):
        replayed = _exchange(faults, used)
        assert replayed.status_code in (400, 401), replayed.text
        assert "already used" in replayed.text or "replay" in replayed.text.lower(), replayed.text
    faults.check(load.answers)


def _stream_until_working(
    faults: Faults, agent: str
) -> tuple[str, Iterator[str], httpx.Response, httpx.Client]:
    message = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": "slow 60"}]}
    client = httpx.Client(timeout=httpx.Timeout(30, read=120), verify=client_tls())
    request = client.build_request(
        "POST",
        f"{faults.url}/a2a/{agent}",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendStreamingMessage",
            "params": {"message": message},
        },
        headers={
            "Authorization": f"Bearer {faults.token()}",
            "A2A-Version": "1.0",
            "Accept": "text/event-stream",
        },
    )
    response = client.send(request, stream=True)
    lines = response.iter_lines()
    for line in lines:
        if line.startswith("data:") and "TASK_STATE_WORKING" in line:
            result = json.loads(line[5:])["result"]
            update = result.get("statusUpdate") or result.get("task")
            return str(update.get("taskId") or update.get("id")), lines, response, client
    raise AssertionError("the stream ended before the task was working")


def test_an_upstream_killed_mid_stream(faults: Faults) -> None:
    streamer = worker_agent(name="Streamer")
    admin = faults.token("admin", ADMIN_SCOPE)
    added = httpx.post(
        faults.url + "/agents",
        json={"card_url": streamer.url, "id": "streamer"},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
        verify=client_tls(),
    )
    assert added.status_code == 201, added.text
    with Load(faults) as load:
        task_id, lines, response, client = _stream_until_working(faults, "streamer")
        try:
            streamer.stop()  # the agent dies with the task at work
            for _ in lines:  # the gateway ends the caller's stream
                pass
        except httpx.HTTPError:
            pass
        finally:
            response.close()
            client.close()
        # Reconciled within its bound, counted from when the caller's stream ended.
        faults.wait_until_settled(within=RECONCILE_MAX + SLACK)
    assert _state(faults, task_id) == "TASK_STATE_FAILED"
    faults.check(load.answers)


def test_an_upstream_that_hangs(faults: Faults) -> None:
    hung: list[Any] = []

    def hang() -> None:
        hung.append(faults.send("slowchat", "hold forever", timeout=60))

    with Load(faults, agents=("worker",)) as load:
        caller = threading.Thread(target=hang)
        caller.start()
        caller.join(UPSTREAM_TIMEOUT + SLACK + 30)
    [answer] = hung
    assert answer.status == 200 and answer.body is not None, answer
    task = answer.body["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_FAILED", task
    # Given up at the agent's own limit, and saying so (not the caller's 60 s).
    assert f"did not answer within {UPSTREAM_TIMEOUT:g} s" in json.dumps(task["status"]), task
    faults.wait_until_settled(within=SLACK)
    faults.check([*load.answers, answer])


HELD_FLOW = {
    "format": "switchboard.flow/v1",
    "id": "held-flow",
    "name": "Held for a human",
    "steps": [{"id": "go", "checkpoint": {"prompt": "Go on?", "timeout_seconds": 600}}],
}


def _flow_run(faults: Faults, url: str, run_id: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{url}/flows/held-flow/runs/{run_id}",
        headers={"Authorization": f"Bearer {faults.token('admin', ADMIN_SCOPE)}"},
        timeout=30,
        verify=client_tls(),
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _owners(faults: Faults, run_ids: list[str]) -> dict[str, str]:
    """The replica (DBOS executor) each run's workflow is under."""
    rows = faults.query(
        "SELECT workflow_uuid, executor_id FROM dbos.workflow_status "
        "WHERE workflow_uuid = ANY($1::text[])",
        run_ids,
    )
    return {row["workflow_uuid"]: row["executor_id"] for row in rows}


def test_postgres_stopped_past_the_stale_window_takes_no_live_replicas_runs(
    faults: Faults,
) -> None:
    """No replica renews its row while the database is away, so once it is
    back every row looks stale; the first replica to look took the other's
    waiting runs over (DBOS's recovery) while that replica, alive, still ran
    them. A replica judges others gone only once it has itself renewed its
    row for a whole stale window (`ReplicaDirectory.gone`)."""
    admin = {"Authorization": f"Bearer {faults.token('admin', ADMIN_SCOPE)}"}
    registered = httpx.post(
        f"{faults.url}/flows", json=HELD_FLOW, headers=admin, timeout=30, verify=client_tls()
    )
    assert registered.status_code in (200, 201), registered.text
    runs: dict[str, str] = {}  # run id -> the replica it was started on
    for replica in faults.replicas:
        for _ in range(2):
            started = httpx.post(
                f"{replica.url}/flows/held-flow/runs",
                json={"input": {}},
                headers={"Authorization": f"Bearer {faults.token()}"},
                timeout=30,
                verify=client_tls(),
            )
            assert started.status_code == 202, started.text
            runs[started.json()["id"]] = replica.url
    waiting.wait_for(
        lambda: all(_flow_run(faults, u, r)["state"] == "input_required" for r, u in runs.items()),
        seconds=30,
        every=0.2,
    )
    before = _owners(faults, list(runs))
    assert len(set(before.values())) == 2, before  # each replica holds its own
    faults.pg.stop()
    time.sleep(STALE + 2)  # longer than the stale window: every row looks stale after
    # B is slower to get the database back than A (paused meanwhile): A looks
    # first, and finds B's row stale though B is alive -- deterministically the
    # moment a takeover used to happen (A's first sweep back).
    a, b = faults.replicas
    b.pause()
    try:
        faults.pg.start()
        a.wait_ready(within=60)
        time.sleep(2 * HEARTBEAT)  # A sweeps (every heartbeat) once the database is back
    finally:
        b.resume()
    b.wait_ready(within=60)
    # B renews within a heartbeat or two, well inside the stale window A
    # waits once back before it judges a stale row; afterwards each finds
    # the other alive. Absence is asserted after the window it would come in.
    time.sleep(STALE + 3 * HEARTBEAT)
    assert _owners(faults, list(runs)) == before
    for run_id, url in runs.items():
        [step] = _flow_run(faults, url, run_id)["steps"]
        decided = httpx.post(
            f"{faults.url}/approvals/{step['approval_id']}",
            json={"decision": "approve"},
            headers=admin,
            timeout=30,
            verify=client_tls(),
        )
        assert decided.status_code == 200, decided.text
    waiting.wait_for(
        lambda: all(_flow_run(faults, u, r)["state"] == "completed" for r, u in runs.items()),
        seconds=SLACK * 2,
        every=0.2,
        what=lambda: {r: _flow_run(faults, u, r) for r, u in runs.items()},
    )
    assert _owners(faults, list(runs)) == before
    # Last in the module, whose cluster is shared; the flow goes all the same.
    removed = httpx.delete(
        f"{faults.url}/flows/held-flow", headers=admin, timeout=30, verify=client_tls()
    )
    assert removed.status_code in (200, 204), removed.text
