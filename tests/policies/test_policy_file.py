"""The policy file: YAML in, a `Policy` or a `PolicyError` naming the line out,
and `PolicySource`, which reloads the file when it changes and keeps the
previous policy when the new file is bad.

An operator's typo must never open (or close) the gateway by accident, so every
way a file can be wrong is an error that says where; and a reload that fails
leaves the policy in force untouched.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from policies import policy_file
from policies.policy_file import (
    MAX_POLICY_BYTES,
    PolicyError,
    PolicySource,
    load_policy,
    parse_policy,
)
from policies.rules import Policy, Rule

VALID = """\
# A realistic policy exercising every field and level.
version: 1
defaults:
  require: [read]
  max_depth: 3
agents:
  "*":
    approval: false
    skills:
      "*":
        grant: [read, write]
  crm:
    grant: [read, crm:read]
    skills:
      delete:
        allow: false
        approval: true
    tools:
      query:
        require: [crm:read]
        max_depth: 2
"""

BROKEN = "defaults:\n  bogus: true\n"


def parse_error(text: str, source: str = "<policy>") -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source)
    return str(info.value)


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def bump_mtime(path: Path) -> None:
    """Make a rewrite visible even on filesystems with coarse timestamps."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


# --- parse_policy: valid files -------------------------------------------------------


def test_valid_policy_loads() -> None:
    pol = parse_policy(VALID)
    assert pol.version == 1
    assert pol.defaults == Rule(require=["read"], max_depth=3)
    assert set(pol.agents) == {"*", "crm"}
    assert pol.agents["*"].skills["*"].grant == ["read", "write"]
    crm = pol.agents["crm"]
    assert crm.grant == ["read", "crm:read"]
    assert crm.skills["delete"] == Rule(allow=False, approval=True)
    assert crm.tools["query"] == Rule(require=["crm:read"], max_depth=2)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("\n\n", id="blank-lines"),
        pytest.param("# only a comment\n", id="comment"),
        pytest.param("---\n", id="document-marker"),
        pytest.param("~\n", id="null"),
    ],
)
def test_an_empty_file_is_the_default_policy(text: str) -> None:
    assert parse_policy(text) == Policy()


def test_anchors_and_aliases_work() -> None:
    text = "defaults:\n  grant: &common [read, write]\nagents:\n  crm:\n    grant: *common\n"
    assert parse_policy(text).agents["crm"].grant == ["read", "write"]


def test_standard_safe_tags_are_fine() -> None:
    """`!!str` keeps a number-looking scope a string; the safe loader allows it."""
    assert parse_policy("defaults:\n  require: [!!str 123]\n").defaults.require == ["123"]


@pytest.mark.parametrize(("word", "value"), [("no", False), ("off", False), ("yes", True)])
def test_yaml_1_1_booleans(word: str, value: bool) -> None:
    """PyYAML reads `allow: no` as false, which is what an operator writing it means."""
    assert parse_policy(f"defaults:\n  allow: {word}\n").defaults.allow is value


def test_null_fields_mean_unset() -> None:
    assert parse_policy("defaults:\n  require: ~\n  allow:\n") == Policy()


def test_the_wildcard_agent_must_be_quoted() -> None:
    """Unquoted `*` starts a YAML alias: a syntax error with a line, not a silent no-op."""
    message = parse_error("agents:\n  *:\n    allow: false\n")
    assert "<policy>:2:" in message
    assert "not valid YAML" in message


# --- parse_policy: unknown keys -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "path"),
    [
        pytest.param("version: 1\nagent: {}\n", 2, "agent", id="top-level"),
        pytest.param(
            "defaults:\n  allow: true\n  alow: false\n", 3, "defaults.alow", id="defaults"
        ),
        pytest.param(
            "defaults: {}\nagents:\n  crm:\n    grant: [read]\n    grants: [write]\n",
            5,
            "agents.crm.grants",
            id="agents.x",
        ),
        pytest.param('agents:\n  "*":\n    deny: true\n', 3, "agents.*.deny", id="agents.wildcard"),
        pytest.param(
            "agents:\n  crm:\n    skills:\n      lookup:\n        approval: true\n"
            "        aproval: true\n",
            6,
            "agents.crm.skills.lookup.aproval",
            id="agents.x.skills.y",
        ),
        pytest.param(
            "agents:\n  crm:\n    tools:\n      query:\n        maxdepth: 2\n",
            5,
            "agents.crm.tools.query.maxdepth",
            id="agents.x.tools.y",
        ),
        pytest.param(
            "agents: {crm: {skills: {lookup: {bogus: 1}}}}\n",
            1,
            "agents.crm.skills.lookup.bogus",
            id="flow-style",
        ),
        pytest.param(
            "# comment\n\ndefaults:\n  # another\n\n  max_depth: 2\n  nope: 1\n",
            7,
            "defaults.nope",
            id="after-comments-and-blank-lines",
        ),
    ],
)
def test_unknown_keys_name_line_and_path(text: str, line: int, path: str) -> None:
    message = parse_error(text, "policy.yaml")
    assert f"policy.yaml:{line}: {path}: unknown key" in message


def test_every_problem_is_reported_with_its_own_line() -> None:
    text = "defaults:\n  max_depth: 0\nagents:\n  crm:\n    max_depth: lots\n    bogus: 1\n"
    lines = parse_error(text).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("<policy>:2: defaults.max_depth: ")
    assert lines[1].startswith("<policy>:5: agents.crm.max_depth: ")
    assert lines[2] == "<policy>:6: agents.crm.bogus: unknown key"


# --- parse_policy: wrong types and values ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "path"),
    [
        pytest.param("version: 2\n", 1, "version", id="version"),
        pytest.param("defaults: 5\n", 1, "defaults", id="defaults-not-a-mapping"),
        pytest.param("agents:\n  - crm\n", 1, "agents", id="agents-a-list"),
        pytest.param("agents:\n  crm: null\n", 2, "agents.crm", id="agent-null"),
        pytest.param(
            "agents:\n  crm:\n    skills: [lookup]\n", 3, "agents.crm.skills", id="skills-a-list"
        ),
        pytest.param("defaults:\n  allow: [1]\n", 2, "defaults.allow", id="allow-a-list"),
        pytest.param("defaults:\n  approval: maybe\n", 2, "defaults.approval", id="approval"),
        pytest.param("defaults:\n  max_depth: lots\n", 2, "defaults.max_depth", id="max_depth"),
        pytest.param("defaults:\n  max_depth: 0\n", 2, "defaults.max_depth", id="max_depth-0"),
        pytest.param("defaults:\n  max_depth: 17\n", 2, "defaults.max_depth", id="max_depth-17"),
        pytest.param("defaults:\n  require: read\n", 2, "defaults.require", id="require-str"),
        pytest.param(
            "defaults:\n  grant:\n    - read\n    - 5\n", 4, "defaults.grant.1", id="grant-item"
        ),
        pytest.param(
            "agents:\n  1:\n    allow: true\n", 2, "agents.1.[key]", id="agent-id-not-a-string"
        ),
    ],
)
def test_wrong_types_name_line_and_path(text: str, line: int, path: str) -> None:
    message = parse_error(text)
    assert message.startswith(f"<policy>:{line}: {path}: ")
    assert "unknown key" not in message


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param("'has\"quote'", id="double-quote"),
        pytest.param("'back\\slash'", id="backslash"),
        pytest.param("two words", id="space"),
        pytest.param("' leading'", id="leading-space"),
        pytest.param("'é'", id="non-ascii"),
    ],
)
@pytest.mark.parametrize("field", ["require", "grant"])
def test_invalid_scope_tokens_are_rejected(field: str, scope: str) -> None:
    text = f"defaults:\n  allow: true\n  {field}:\n    - read\n    - {scope}\n"
    message = parse_error(text)
    # The validator checks the whole list, so the line is the field's own.
    assert message.startswith(f"<policy>:3: defaults.{field}: ")


# --- parse_policy: not YAML, not a mapping, unsafe tags -------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("defaults:\n  allow: [true\n", 3, id="unclosed-flow-list"),
        pytest.param("defaults:\n  allow: true\n bad: 1\n", 3, id="bad-indentation"),
        pytest.param("defaults:\n\tallow: true\n", 2, id="tab-indentation"),
        pytest.param("defaults:\n  grant: 'unclosed\n", 3, id="unclosed-quote"),
        pytest.param("a: 1\n---\nb: 2\n", 2, id="two-documents"),
        pytest.param("defaults:\n  grant: *nowhere\n", 2, id="undefined-alias"),
    ],
)
def test_yaml_syntax_errors_name_the_line(text: str, line: int) -> None:
    message = parse_error(text, "p.yaml")
    assert message.startswith(f"p.yaml:{line}: not valid YAML: ")


def test_control_characters_name_the_line() -> None:
    message = parse_error("defaults:\n  allow: true\n  \x07grant: [read]\n", "p.yaml")
    assert message.startswith("p.yaml:3: ")


def test_control_characters_are_still_refused() -> None:
    assert "not valid YAML" in parse_error("defaults:\n  allow: true\n  \x07grant: [read]\n")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("- read\n- write\n", id="list"),
        pytest.param("just a string\n", id="string"),
        pytest.param("42\n", id="number"),
        pytest.param("true\n", id="bool"),
    ],
)
def test_the_document_must_be_a_mapping(text: str) -> None:
    assert parse_error(text) == "<policy>:1: the policy must be a mapping"


@pytest.mark.parametrize(
    "tagged",
    [
        "!!python/object/apply:builtins.open [{marker}, w]",
        "!!python/object/new:builtins.open [{marker}, w]",
        "!!python/name:os.system",
        "!!python/object:pathlib.Path {{}}",
        "!custom {marker}",
    ],
)
def test_yaml_tags_that_build_objects_are_refused(tmp_path: Path, tagged: str) -> None:
    """The safe loader builds no Python objects: the file the tag would create
    is never created, and the error names the tag's line."""
    marker = tmp_path / "pwned"
    text = "version: 1\ndefaults:\n  allow: " + tagged.format(marker=f"'{marker}'") + "\n"
    message = parse_error(text)
    assert message.startswith("<policy>:3: not valid YAML: ")
    assert not marker.exists()
    # Through the file loader too.
    with pytest.raises(PolicyError):
        load_policy(write(tmp_path / "policy.yaml", text))
    assert not marker.exists()


def test_duplicate_keys_are_refused() -> None:
    text = "defaults:\n  allow: false\nagents: {}\ndefaults:\n  allow: true\n"
    message = parse_error(text)
    assert "<policy>:4:" in message


# --- load_policy ------------------------------------------------------------------------------


def test_load_policy_reads_a_file(tmp_path: Path) -> None:
    assert load_policy(write(tmp_path / "policy.yaml", VALID)) == parse_policy(VALID)


def test_load_policy_errors_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "policy.yaml", BROKEN)
    with pytest.raises(PolicyError, match="unknown key") as info:
        load_policy(path)
    assert str(info.value) == f"{path}:2: defaults.bogus: unknown key"


def test_load_policy_empty_file_is_the_default(tmp_path: Path) -> None:
    assert load_policy(write(tmp_path / "policy.yaml", b"")) == Policy()


def test_load_policy_accepts_a_utf8_bom(tmp_path: Path) -> None:
    """Editors on Windows write one; it is not part of the first key."""
    path = write(tmp_path / "policy.yaml", b"\xef\xbb\xbfdefaults:\n  allow: false\n")
    assert load_policy(path).defaults.allow is False


def test_load_policy_refuses_a_file_over_the_limit(tmp_path: Path) -> None:
    # A YAML comment: were it read, it would parse as an empty (default) policy.
    path = write(tmp_path / "policy.yaml", b"#" + b"x" * MAX_POLICY_BYTES)
    assert path.stat().st_size == MAX_POLICY_BYTES + 1
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(info.value) == f"{path}: larger than {MAX_POLICY_BYTES} bytes"


def test_load_policy_size_limit_is_inclusive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of exactly the limit loads (shown with a small limit, to stay fast)."""
    monkeypatch.setattr(policy_file, "MAX_POLICY_BYTES", 64)
    text = "defaults:\n  allow: false\n"
    exact = text + "#" * (64 - len(text) - 1) + "\n"
    assert len(exact.encode()) == 64
    assert load_policy(write(tmp_path / "exact.yaml", exact)).defaults.allow is False
    with pytest.raises(PolicyError, match="larger than 64 bytes"):
        load_policy(write(tmp_path / "over.yaml", exact + "\n"))


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"defaults:\n  allow: \xff\n", id="invalid-byte"),
        pytest.param("# caf\u00e9\n".encode("latin-1"), id="latin-1"),
        pytest.param("defaults: {}\n".encode("utf-16"), id="utf-16"),
    ],
)
def test_load_policy_refuses_non_utf8(tmp_path: Path, raw: bytes) -> None:
    path = write(tmp_path / "policy.yaml", raw)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(info.value) == f"{path}: not UTF-8"


def test_load_policy_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert not isinstance(info.value, OSError)
    assert str(info.value).startswith(f"{path}: cannot read the policy file: ")
    assert "No such file" in str(info.value)


def test_load_policy_directory_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path)


# --- PolicySource ----------------------------------------------------------------------------


def test_source_without_a_file_is_the_default_policy() -> None:
    source = PolicySource(None)
    assert source.current == Policy()
    assert source.reload_if_changed() is False
    assert source.last_error is None


def test_source_loads_the_file_at_start(tmp_path: Path) -> None:
    source = PolicySource(write(tmp_path / "policy.yaml", VALID))
    assert source.current == parse_policy(VALID)
    assert source.last_error is None


def test_source_with_a_bad_file_at_start_raises(tmp_path: Path) -> None:
    path = write(tmp_path / "policy.yaml", BROKEN)
    with pytest.raises(PolicyError, match=r":2: defaults\.bogus: unknown key"):
        PolicySource(path)


def test_source_with_a_missing_file_at_start_raises(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        PolicySource(tmp_path / "absent.yaml")


def test_reload_unchanged_is_false(tmp_path: Path) -> None:
    source = PolicySource(write(tmp_path / "policy.yaml", VALID))
    before = source.current
    assert source.reload_if_changed() is False
    assert source.reload_if_changed() is False
    assert source.current is before


def test_reload_after_a_valid_change(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "policy.yaml", "defaults:\n  allow: true\n")
    source = PolicySource(path)
    held_by_a_request = source.current
    write(path, "defaults:\n  allow: false\n  approval: true\n")  # a different size
    with caplog.at_level(logging.INFO, logger="policies.policy_file"):
        assert source.reload_if_changed() is True
    assert source.current.defaults == Rule(allow=False, approval=True)
    assert source.last_error is None
    # The swap is a new object: a request in flight keeps the policy it started with.
    assert held_by_a_request.defaults.allow is True
    assert any("reloaded" in r.getMessage() for r in caplog.records)
    # And once taken in, the same file is not re-read.
    assert source.reload_if_changed() is False


def test_reload_notices_a_same_size_rewrite_with_a_new_mtime(tmp_path: Path) -> None:
    path = write(tmp_path / "policy.yaml", "defaults:\n  allow: true\n")
    source = PolicySource(path)
    write(path, "defaults:\n  allow: off \n")  # "off " is as long as "true"
    assert path.stat().st_size == len(b"defaults:\n  allow: true\n")
    bump_mtime(path)
    assert source.reload_if_changed() is True
    assert source.current.defaults.allow is False


def test_reload_notices_an_atomic_replace(tmp_path: Path) -> None:
    """Editors and config management write a new file and rename it over the old
    one: a new inode, noticed even if size and mtime happen to match."""
    path = write(tmp_path / "policy.yaml", "defaults:\n  allow: true\n")
    source = PolicySource(path)
    old = path.stat()
    replacement = write(tmp_path / "policy.yaml.new", "defaults:\n  allow: off \n")
    os.utime(replacement, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(replacement, path)
    assert path.stat().st_ino != old.st_ino
    assert source.reload_if_changed() is True
    assert source.current.defaults.allow is False


def test_reload_after_an_invalid_change_keeps_the_policy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "policy.yaml", VALID)
    source = PolicySource(path)
    before = source.current
    write(path, VALID + "typo: 1\n")
    with caplog.at_level(logging.ERROR, logger="policies.policy_file"):
        assert source.reload_if_changed() is False
    assert source.current is before
    assert source.last_error is not None
    assert f"{path}:22: typo: unknown key" in source.last_error
    assert any(r.levelno == logging.ERROR for r in caplog.records)
    # Unchanged since: no new attempt, the error stays until the file is fixed.
    assert source.reload_if_changed() is False
    assert source.current is before
    assert source.last_error is not None


def test_a_later_fix_clears_the_error(tmp_path: Path) -> None:
    path = write(tmp_path / "policy.yaml", "defaults:\n  allow: true\n")
    source = PolicySource(path)
    write(path, "defaults:\n  allow: [true\n")
    assert source.reload_if_changed() is False
    assert source.last_error is not None
    assert "not valid YAML" in source.last_error
    write(path, "defaults:\n  allow: false\n  max_depth: 2\n")
    assert source.reload_if_changed() is True
    assert source.last_error is None
    assert source.current.defaults == Rule(allow=False, max_depth=2)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(b"\xff\xfe\n", id="not-utf8"),
        pytest.param(b"- a list\n", id="not-a-mapping"),
        pytest.param(b"defaults:\n  allow: !!python/name:os.system\n", id="unsafe-tag"),
    ],
)
def test_every_kind_of_bad_file_keeps_the_policy_on_reload(tmp_path: Path, bad: bytes) -> None:
    path = write(tmp_path / "policy.yaml", "defaults:\n  allow: false\n")
    source = PolicySource(path)
    write(path, bad)
    bump_mtime(path)
    assert source.reload_if_changed() is False
    assert source.current.defaults.allow is False
    assert source.last_error


def test_reload_when_the_file_disappears_and_comes_back(tmp_path: Path) -> None:
    path = write(tmp_path / "policy.yaml", "defaults:\n  allow: false\n")
    source = PolicySource(path)
    before = source.current
    path.unlink()
    assert source.reload_if_changed() is False
    assert source.current is before
    assert source.last_error is not None
    assert "cannot read" in source.last_error
    # Still gone: nothing to do.
    assert source.reload_if_changed() is False
    write(path, "defaults:\n  allow: true\n")
    assert source.reload_if_changed() is True
    assert source.current.defaults.allow is True
    assert source.last_error is None


def test_oversized_file_on_reload_keeps_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "policy.yaml", "defaults:\n  allow: false\n")
    source = PolicySource(path)
    monkeypatch.setattr(policy_file, "MAX_POLICY_BYTES", 32)
    write(path, "defaults:\n  allow: true\n" + "#" * 64 + "\n")
    assert source.reload_if_changed() is False
    assert source.current.defaults.allow is False
    assert source.last_error is not None
    assert "larger than 32 bytes" in source.last_error


def test_a_file_caught_half_written_is_not_taken_in(tmp_path: Path) -> None:
    """An editor truncates, then writes: an empty file in between must not put
    the defaults (allow) in force; the finished file is read on the next tick."""
    path = write(tmp_path / "policy.yaml", "defaults:\n  allow: false\n")
    source = PolicySource(path)
    path.write_text("")  # the moment between truncate and write
    assert source.reload_if_changed() is False
    assert source.current.defaults.allow is False and source.last_error is None
    write(path, "defaults:\n  allow: true\n")
    assert source.reload_if_changed() is True
    assert source.current.defaults.allow is True
