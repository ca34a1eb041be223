"""`credential_of`: the one credential a request (or gRPC call) carries."""

from __future__ import annotations

import pytest

from gateway.http.auth import CredentialHeaderError, credential_of

KEY = "sk-sb-" + "a" * 12 + "_" + "b" * 43


def test_one_credential_is_read() -> None:
    assert credential_of(["Bearer t"], []) == "t"
    assert credential_of([], [KEY]) == KEY
    assert credential_of([f"Bearer  {KEY} "], [KEY]) == KEY  # the same one twice


@pytest.mark.parametrize(
    ("authorizations", "api_keys", "detail"),
    [
        (["Bearer a", "Bearer b"], [], "send one Authorization header"),
        (["Bearer a", "Bearer a"], [], "send one Authorization header"),
        (["Bearer a", ""], [], "send one Authorization header"),
        ([], [KEY, KEY], "send one X-Api-Key header"),
        (["Bearer a"], [KEY], "Authorization and X-Api-Key carry different credentials"),
    ],
)
def test_two_credentials_are_refused(
    authorizations: list[str], api_keys: list[str], detail: str
) -> None:
    with pytest.raises(CredentialHeaderError, match=detail) as refused:
        credential_of(authorizations, api_keys)
    assert refused.value.malformed
