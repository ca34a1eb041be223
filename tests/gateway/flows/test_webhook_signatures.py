"""Webhook signatures as Standard Webhooks defines them, checked against the
reference test vector of its specification (standard-webhooks/spec), and the
ways a delivery is refused."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from gateway.flows.webhooks import Delivery, WebhookRefused, key_of, signature, verify

# From the Standard Webhooks specification's reference implementations' tests.
SECRET = SecretStr("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = "1614265330"
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_reference_vector_signs_as_the_specification_says() -> None:
    assert signature(key_of(SECRET), MSG_ID, TIMESTAMP, BODY) == EXPECTED
    verify(key_of(SECRET), Delivery(MSG_ID, TIMESTAMP, EXPECTED, BODY), now=1614265330)


def test_one_good_signature_among_several_is_enough() -> None:
    offered = f"v1,bm90IGl0 {EXPECTED} v2,whatever"
    verify(key_of(SECRET), Delivery(MSG_ID, TIMESTAMP, offered, BODY), now=1614265330)


def test_a_secret_without_the_prefix_is_its_bytes() -> None:
    assert key_of(SecretStr("plain-secret")) == b"plain-secret"
    assert key_of(SecretStr("whsec_not base64!")) == b"whsec_not base64!"


@pytest.mark.parametrize(
    ("delivery", "now"),
    [
        (Delivery(MSG_ID, TIMESTAMP, EXPECTED, BODY + b" "), 1614265330),  # body changed
        (Delivery("msg_other", TIMESTAMP, EXPECTED, BODY), 1614265330),  # id changed
        (Delivery(MSG_ID, "1614265331", EXPECTED, BODY), 1614265330),  # timestamp changed
        (Delivery(MSG_ID, TIMESTAMP, EXPECTED, BODY), 1614265330 + 301),  # too late
        (Delivery(MSG_ID, TIMESTAMP, EXPECTED, BODY), 1614265330 - 301),  # from the future
        (Delivery(MSG_ID, TIMESTAMP, "", BODY), 1614265330),  # unsigned
        (Delivery(MSG_ID, TIMESTAMP, EXPECTED.replace("v1,", "v0,"), BODY), 1614265330),
        (Delivery("", TIMESTAMP, EXPECTED, BODY), 1614265330),  # no id
        (Delivery(MSG_ID, "yesterday", EXPECTED, BODY), 1614265330),
        (Delivery("x" * 257, TIMESTAMP, EXPECTED, BODY), 1614265330),
    ],
)
def test_a_delivery_not_signed_so_is_refused(delivery: Delivery, now: float) -> None:
    with pytest.raises(WebhookRefused):
        verify(key_of(SECRET), delivery, now=now)


def test_another_secret_does_not_verify() -> None:
    with pytest.raises(WebhookRefused):
        verify(
            key_of(SecretStr("whsec_" + "A" * 32)),
            Delivery(MSG_ID, TIMESTAMP, EXPECTED, BODY),
            now=1614265330,
        )
