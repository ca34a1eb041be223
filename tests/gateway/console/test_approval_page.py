"""The console's approval page says what the approval was asked on: a flow's
checkpoint on the run's grant (days), not "the token" (issue 32.9); and a
chain that starts with the user names the user once."""

from __future__ import annotations

from pathlib import Path

import httpx

from registry.tls import client_tls
from tests.support.console import dev_login
from tests.support.flows import QUOTE_FLOW, flow_setup, wait_for_run


def test_a_checkpoint_approval_shows_the_runs_grant_not_a_token(tmp_path: Path) -> None:
    with flow_setup(tmp_path, None) as setup:
        assert setup.register(QUOTE_FLOW).status_code == 201
        with setup.user() as dana:
            big = {"sku": "X-100", "quantity": 500, "customer": "ACME"}
            started = dana.post("/flows/quote-flow/runs", json={"input": big})
            assert started.status_code == 202, started.text
            run = wait_for_run(dana, started.json(), "input_required")
        [approval] = [s["approval_id"] for s in run["steps"] if s.get("approval_id")]
        with httpx.Client(base_url=setup.gateway.url, timeout=30, verify=client_tls()) as client:
            dev_login(client, "root", "switchboard:admin")
            page = client.get(f"/ui/approvals/{approval}")
        assert page.status_code == 200
        assert "Run&#39;s grant expires" in page.text or "Run's grant expires" in page.text
        assert "token expires" not in page.text.lower()
        assert "dana → dana" not in page.text
        assert "<dd>dana → quote-flow" in page.text, page.text
