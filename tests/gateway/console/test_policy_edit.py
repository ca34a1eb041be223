"""`/ui/policy`'s editor over real HTTP, on both databases: the quickstart's
default shown as a document; Check says the problems by line, or the diff
against the policy in force, and saves nothing; Save puts the text in force
(through `PUT /policies`' function: audited), refused -- the text kept on
the page -- when it is not valid or when someone saved meanwhile; both forms
behind the session's CSRF token and for admins only; a policy file's
gateway offers no Save and refuses one."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from policies.policy_file import DEFAULT_DOCUMENT
from tests.support.console import browser, dev_login
from tests.support.gateway import Gateway, start_gateway

CLOSED = "# closed for now\nagents:\n  sales:\n    allow: false\n"
BASE = re.compile(r'name="base_digest" value="([0-9a-f]{64})"')


def base_of(page: str) -> str:
    found = BASE.search(page)
    assert found is not None, page[:2000]
    return found.group(1)


def policy_of(gateway: Gateway) -> dict[str, Any]:
    with gateway.client() as admin:
        found: dict[str, Any] = admin.get("/policies").json()
    return found


def versions(gateway: Gateway) -> list[dict[str, Any]]:
    with gateway.client() as admin:
        items: list[dict[str, Any]] = admin.get("/policies/versions").json()["items"]
    return items


def test_an_admin_checks_then_saves_the_policy(deployment: Gateway) -> None:
    with browser(deployment) as ann:
        csrf = dev_login(ann, "ann", "switchboard:admin")
        page = ann.get("/ui/policy")
        assert page.status_code == 200
        assert "none: the built-in default" in page.text
        assert DEFAULT_DOCUMENT in html.unescape(page.text)
        base = base_of(page.text)
        assert base == policy_of(deployment)["digest"]
        assert 'formaction="/ui/policy/save"' in page.text
        assert "style=" not in page.text

        form = {"csrf": csrf, "document": CLOSED, "base_digest": base}
        checked = ann.post("/ui/policy/check", data=form)
        assert checked.status_code == 200
        assert 'id="diff"' in checked.text and "+    allow: false" in checked.text
        assert 'class="d-add"' in checked.text and 'class="d-del"' in checked.text
        assert base_of(checked.text) == base  # the base stays the page's
        assert versions(deployment) == [] and policy_of(deployment)["source"] == "default"

        # Only comments differ: said so.
        same = ann.post("/ui/policy/check", data={**form, "document": "version: 1\n"})
        assert "Only comments or layout differ" in same.text

        saved = ann.post("/ui/policy/save", data=form)
        assert saved.status_code == 303 and saved.headers["location"] == "/ui/policy?saved=1"
        shown = ann.get(saved.headers["location"])
        assert "Saved: version 1 is in force." in shown.text
        assert "version 1, saved here" in shown.text and "# closed for now" in shown.text
        assert base_of(shown.text) == policy_of(deployment)["digest"] != base
    [version] = versions(deployment)
    assert version["author"]["subject"] == "ann" and version["in_force"]
    with deployment.client() as admin:
        events = [e["event"] for e in admin.get("/audit", params={"kind": "all"}).json()["items"]]
    assert "policy.changed" in events


def test_a_save_over_a_policy_saved_meanwhile_is_refused_and_the_text_kept(
    deployment: Gateway,
) -> None:
    with browser(deployment) as ann:
        csrf = dev_login(ann, "ann", "switchboard:admin")
        base = base_of(ann.get("/ui/policy").text)
        # Someone else saves first.
        with deployment.client() as bob:
            other = "agents:\n  billing:\n    approval: true\n"
            assert bob.put("/policies", json={"document": other, "base_digest": base}).is_success
        form = {"csrf": csrf, "document": CLOSED, "base_digest": base}
        refused = ann.post("/ui/policy/save", data=form)
        assert refused.status_code == 409
        assert "changed meanwhile" in refused.text and "# closed for now" in refused.text
        # The diff is against the policy now in force, and so is the new base.
        assert "-    approval: true" in refused.text
        assert base_of(refused.text) == policy_of(deployment)["digest"]
        assert len(versions(deployment)) == 1
        # Having seen it, saving again replaces it.
        again = ann.post("/ui/policy/save", data={**form, "base_digest": base_of(refused.text)})
        assert again.status_code == 303
    assert policy_of(deployment)["document"] == CLOSED


BAD = [
    ("agents:\n  sales: [unclosed\n", "line 3: not valid YAML"),
    ("agents:\n  sales:\n    alow: false\n", "line 3: agents.sales.alow: unknown key"),
    ("agents:\n  sales:\n    allow: perhaps\n", "line 3: agents.sales.allow"),
    ("a: " + "[" * 40 + "]" * 40 + "\n", "line 1: nested deeper than 32 levels"),
]


def test_bad_policies_are_said_by_line_and_nothing_is_saved(deployment: Gateway) -> None:
    before = policy_of(deployment)
    with browser(deployment) as ann:
        csrf = dev_login(ann, "ann", "switchboard:admin")
        for document, said in BAD:
            form = {"csrf": csrf, "document": document, "base_digest": before["digest"]}
            checked = ann.post("/ui/policy/check", data=form)
            assert checked.status_code == 200 and "not valid" in checked.text
            assert said in html.unescape(checked.text), document
            refused = ann.post("/ui/policy/save", data=form)
            assert refused.status_code == 422 and said in html.unescape(refused.text)
            assert document.splitlines()[0] in html.unescape(refused.text)  # the text kept
        form = {"csrf": csrf, "document": "x" * (256 * 1024 + 1), "base_digest": before["digest"]}
        huge = ann.post("/ui/policy/save", data=form)
        assert huge.status_code == 422 and "document" in huge.text
        assert ann.post("/ui/policy/check", data=form).status_code == 422
        odd = ann.post("/ui/policy/save", data={**form, "document": CLOSED, "base_digest": "x"})
        assert odd.status_code == 422 and "base_digest" in odd.text
    assert policy_of(deployment) == before and versions(deployment) == []


def test_both_forms_need_the_csrf_token_and_an_admin(deployment: Gateway) -> None:
    before = policy_of(deployment)
    form = {"document": CLOSED, "base_digest": before["digest"]}
    with browser(deployment) as ann, browser(deployment) as bob:
        csrf = dev_login(ann, "ann", "switchboard:admin")
        bob_csrf = dev_login(bob, "bob", "crm:read")
        for path in ("/ui/policy/check", "/ui/policy/save"):
            assert ann.post(path, data=form).status_code == 403
            assert ann.post(path, data={**form, "csrf": "forged"}).status_code == 403
            assert bob.post(path, data={**form, "csrf": bob_csrf}).status_code == 403
        assert bob.get("/ui/policy").status_code == 403
        assert csrf
    with browser(deployment) as nobody:
        answer = nobody.post("/ui/policy/save", data=form)
        assert answer.status_code == 303 and "/ui/login" in answer.headers["location"]
    assert policy_of(deployment) == before and versions(deployment) == []


def test_a_policy_file_is_checked_here_and_edited_there(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(CLOSED)
    gateway = start_gateway(tmp_path / "data", None, policy_file=policy)
    try:
        with browser(gateway) as ann:
            csrf = dev_login(ann, "ann", "switchboard:admin")
            page = ann.get("/ui/policy")
            assert f"the file {policy}" in page.text and "edit it there" in page.text
            assert 'id="save"' not in page.text
            form = {"csrf": csrf, "document": "version: 1\n", "base_digest": base_of(page.text)}
            checked = ann.post("/ui/policy/check", data=form)
            assert "-    allow: false" in checked.text
            refused = ann.post("/ui/policy/save", data=form)
            assert refused.status_code == 409 and str(policy) in refused.text
        assert policy.read_text() == CLOSED and policy_of(gateway)["document"] == CLOSED
    finally:
        gateway.stop()
