"""`/ui/api-keys` over real HTTP: a user makes a key within their scopes,
sees it once, uses it, revokes it; another user neither sees nor revokes it;
every form behind the session's CSRF token."""

from __future__ import annotations

import re

import httpx

from registry.tls import client_tls
from tests.support.console import browser, dev_login
from tests.support.gateway import Gateway
from tests.support.waiting import wait_for

KEY = re.compile(r"sk-sb-[a-z0-9]{12}_[A-Za-z0-9]{43}")


def test_a_user_makes_uses_and_revokes_a_key(deployment: Gateway) -> None:
    with browser(deployment) as ann, browser(deployment) as bob:
        csrf = dev_login(ann, "ann", "crm:read crm:write")
        bob_csrf = dev_login(bob, "bob", "crm:read")
        form = {"name": "nightly", "scopes": "crm:read", "expires": "30d", "rate": "10/s"}
        # No CSRF token; more than ann holds; a service (ann is no admin): nothing made.
        assert ann.post("/ui/api-keys", data=form).status_code == 403
        more = ann.post("/ui/api-keys", data={**form, "scopes": "crm:admin", "csrf": csrf})
        assert more.status_code == 403 and "crm:admin" in more.text
        service = ann.post("/ui/api-keys", data={**form, "service": "ci", "csrf": csrf})
        assert service.status_code == 403
        bad = ann.post("/ui/api-keys", data={**form, "rate": "fast", "csrf": csrf})
        assert bad.status_code == 400 and "not a rate" in bad.text
        assert KEY.search(ann.get("/ui/api-keys").text) is None

        made = ann.post("/ui/api-keys", data={**form, "csrf": csrf})
        assert made.status_code == 200, made.text
        (key,) = KEY.findall(made.text)
        key_id = key[6:18]
        # Shown once: the list shows its prefix only.
        listed = ann.get("/ui/api-keys").text
        assert f"sk-sb-{key_id}" in listed and key not in listed
        with httpx.Client(base_url=deployment.url, verify=client_tls()) as script:
            assert script.get("/agents", headers={"X-Api-Key": key}).status_code == 200
        # Bob sees none of it and cannot revoke it.
        assert key_id not in bob.get("/ui/api-keys").text
        theirs = bob.post(f"/ui/api-keys/{key_id}/revoke", data={"csrf": bob_csrf})
        assert theirs.status_code == 404
        revoked = ann.post(f"/ui/api-keys/{key_id}/revoke", data={"csrf": csrf})
        assert revoked.status_code == 303
        assert "revoked" in ann.get("/ui/api-keys").text
        with httpx.Client(base_url=deployment.url, verify=client_tls()) as script:
            wait_for(lambda: script.get("/agents", headers={"X-Api-Key": key}).status_code == 401)
