"""The policy as a document: the built-in default's text, its digest, each
problem with its line, documents too deep or too large once their aliases are
expanded refused before anything recursive reads them, and `PolicySource`
adopting stored versions only forwards."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from policies.policy_file import (
    DEFAULT_DOCUMENT,
    MAX_POLICY_DEPTH,
    PolicyDocument,
    PolicyError,
    PolicySource,
    parse_policy,
)
from policies.rules import Policy


def test_the_default_document_is_the_default_policy() -> None:
    assert parse_policy(DEFAULT_DOCUMENT) == Policy()
    source = PolicySource(None)
    assert source.document.source == "default" and source.document.text == DEFAULT_DOCUMENT
    assert source.document.digest == hashlib.sha256(DEFAULT_DOCUMENT.encode()).hexdigest()
    assert source.stored_version == 0


def test_a_file_s_document_is_its_text(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("# closed\nagents:\n  x:\n    allow: false\n")
    source = PolicySource(path)
    assert source.document == PolicyDocument(path.read_text(), "file")


def test_each_problem_comes_with_its_line() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy("agents:\n  a:\n    alow: false\n  b:\n    max_depth: zero\n", "p")
    assert caught.value.problems == (
        (3, "agents.a.alow: unknown key"),
        (
            5,
            "agents.b.max_depth: Input should be a valid integer, unable to parse string as an integer",
        ),
    )
    assert str(caught.value).splitlines()[0] == "p:3: agents.a.alow: unknown key"


def test_a_problem_of_no_line_is_the_whole_document_s() -> None:
    assert PolicyError("p: not UTF-8").problems == ((None, "p: not UTF-8"),)


@pytest.mark.parametrize("depth", [MAX_POLICY_DEPTH + 1, 5000])
def test_a_document_nested_too_deep_is_refused_at_its_line(depth: int) -> None:
    text = "agents:\n  x:\n    skills: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p")
    assert caught.value.problems == ((3, f"nested deeper than {MAX_POLICY_DEPTH} levels"),)


def test_a_document_just_deep_enough_is_judged_on_its_content() -> None:
    text = (
        "agents:\n  x:\n    skills: " + "[" * (MAX_POLICY_DEPTH - 3) + "]" * (MAX_POLICY_DEPTH - 3)
    )
    with pytest.raises(PolicyError, match="valid dictionary"):
        parse_policy(text)


def test_aliases_that_expand_past_the_bound_are_refused() -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join(['*a' if i == 0 else f'*a{i - 1}'] * 10)}]\n" for i in range(7)
    )
    with pytest.raises(PolicyError, match="aliases expanded"):
        parse_policy(laughs)
    # A few aliases are fine (and judged on their content).
    shared = "defaults: &d {require: [read]}\nagents:\n  x: *d\n  y: *d\n"
    assert parse_policy(shared).agents["x"].require == ["read"]


def test_a_deployment_s_check_refuses_with_its_reason() -> None:
    source = PolicySource(None, lambda policy: "no limits here" if policy.limits else None)
    with pytest.raises(PolicyError) as caught:
        source.check("limits:\n  - {name: a, rate: 1/second}\n", "edit")
    assert caught.value.problems == ((None, "no limits here"),)


def test_stored_versions_are_adopted_only_forwards() -> None:
    source = PolicySource(None)
    closed = parse_policy("agents:\n  x:\n    allow: false\n")
    assert source.adopt(closed, PolicyDocument("two", "stored", 2))
    assert source.stored_version == 2 and source.current == closed
    source.last_error = "version 3 refused"
    assert not source.adopt(Policy(), PolicyDocument("one", "stored", 1))
    assert not source.adopt(Policy(), PolicyDocument("two", "stored", 2))
    assert source.current == closed and source.document.text == "two"
    assert source.adopt(Policy(), PolicyDocument("three", "stored", 3))
    assert source.last_error is None


@pytest.mark.parametrize(
    "text",
    [
        "? [a]\n: 1\n",  # a list as a key
        "agents:\n  {a: 1}: {}\n",  # a mapping as a key
        "version: 2001-13-45\n",  # a date that is no date
        "agents:\n  x:\n    require: [2001-02-30]\n",
        "version: !!int 1x\n",
        "version: " + "9" * 5000 + "\n",  # past Python's digits for an int
    ],
)
def test_what_the_constructors_refuse_is_a_policy_error(text: str) -> None:
    """Past YAMLError, PyYAML's constructors raise ValueError and TypeError:
    each is the policy's refusal (a 422 naming it), never a crash."""
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_policy(text)
