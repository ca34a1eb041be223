"""The one namespace of `/mcp` (pure rules): what an unprefixed name may be,
whose a name is, and which stored names may be offered."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.mcp_names import (
    MAX_NAME,
    NameReserved,
    cut_hashed,
    federated_name,
    keeps_own_name,
    namespaced_name,
    owner_of,
    owns,
    reserved,
    reserved_id,
    reserved_uri,
    skill_tool_name,
    withheld,
)

ids = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?", fullmatch=True)
names = st.text(alphabet=string.ascii_letters + string.digits + "_-./ é", min_size=1, max_size=140)


@pytest.mark.parametrize(
    "name",
    [
        "worker__work",  # an agent's skill
        "sales__quote",  # a prefixed server's tool
        "a__",
        "x__y__z",
        "switchboard__approval_status",  # the gateway's own
        "switchboard__flow_nightly",  # flows, later
        # A hashed {id}__{skill} name cut before its separator.
        namespaced_name("a" * 60, "quote"),
    ],
)
def test_names_prefixing_could_produce_are_reserved(name: str) -> None:
    assert reserved(name) is not None
    assert not keeps_own_name(name)
    assert federated_name("impostor", name, prefix=False) != name


@pytest.mark.parametrize("name", ["echo", "get_forecast", "a-b", "_x", "x_", "a_b_c", "x" * 64])
def test_ordinary_names_are_kept(name: str) -> None:
    assert reserved(name) is None
    assert federated_name("plain", name, prefix=False) == name


@given(ids, names)
def test_every_name_an_agent_or_server_is_given_is_reserved_to_unprefixed_servers(
    target: str, name: str
) -> None:
    given_name = namespaced_name(target, name)
    assert reserved(given_name) is not None
    assert owns(target, given_name)
    assert skill_tool_name(target, name) == given_name


def test_a_cut_hashed_name_is_owned_by_the_ids_it_starts() -> None:
    long_id = "a" * 55 + "-sales"
    name = skill_tool_name(long_id, "quote")
    assert "__" not in name and len(name) == MAX_NAME and cut_hashed(name)
    assert owner_of(name) is None
    assert owns(long_id, name) and not owns("b" * 61, name)


def test_owner_of_is_the_id_before_the_first_separator() -> None:
    assert owner_of("sales__quote") == "sales"
    assert owner_of("sales__a__b") == "sales"
    assert owner_of("Sales__quote") is None  # not an id
    assert owner_of("plain") is None


def test_withheld_stored_names() -> None:
    # Kept unprefixed, and not reserved: fine.
    assert withheld("plain", "echo", "echo") is None
    # Prefixed, the server's own form: fine.
    assert withheld("crm", "lookup", "crm__lookup") is None
    assert withheld("crm", "lookup.user", namespaced_name("crm", "lookup.user")) is None
    # Stored before names were checked: an agent's skill's name, kept unprefixed.
    refusal = withheld("impostor", "worker__work", "worker__work")
    assert refusal is not None and refusal.reserved
    # The gateway's own, from any server.
    assert withheld("plain", "switchboard__approval_status", "switchboard__approval_status")
    assert withheld("switchboard", "x", "switchboard__x")
    # Another target's form.
    refusal = withheld("impostor", "quote", "sales__quote")
    assert refusal is not None and not refusal.reserved


def test_the_gateways_id_and_scheme_are_reserved() -> None:
    refusal = reserved_id("switchboard")
    assert refusal is not None
    assert isinstance(refusal.error("agent switchboard"), NameReserved)
    assert reserved_id("switchboard-eu") is None
    assert reserved_uri("switchboard://docs/x") and reserved_uri("SwitchBoard:x")
    assert not reserved_uri("note://switchboard")
