"""Loading the policy (YAML, or JSON) and reloading it when it changes.

A bad document is an error that names the line; on reload a bad file is
logged and the previous policy stays in force, so an operator's typo never
opens (or closes) the gateway by accident. The swap is one reference
assignment: a request in flight finishes with the policy it started with.

The policy in force comes with the text it was read from (`PolicyDocument`):
the file's, a version an admin saved (kept by the gateway, which hands it to
`PolicySource.adopt`), or the built-in default's.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from policies.rules import Policy

logger = logging.getLogger(__name__)
MAX_POLICY_BYTES = 4 * 1024 * 1024
# No policy nests deeper than a few levels (agents.<id>.skills.<id>.require is
# five). PyYAML composes recursively: a document nested a thousand deep would
# end in a RecursionError, not an error naming its line.
MAX_POLICY_DEPTH = 32
# Nodes counted with every alias expanded: a few anchors aliased in a few
# levels ("billion laughs") are a small text and a huge tree to validate.
MAX_POLICY_NODES = 100_000  # a large real policy is a few thousand

# The built-in default, as a document an admin can start from.
DEFAULT_DOCUMENT = """\
# The built-in default policy: no rule of its own. A delegation the caller's
# token and the target's card allow is allowed (docs/delegation.md, "Policy").
version: 1
"""

# (line, message): the line is None when the problem is the whole document's.
Problem = tuple[int | None, str]


class PolicyError(ValueError):
    """The policy cannot be used; the message names the file and line, and
    ``problems`` holds each problem with its line."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[Problem, ...] = tuple(problems) or ((None, message),)


def _refused(source: str, problems: Sequence[Problem]) -> PolicyError:
    said = (
        f"{source}:{line}: {m}" if line is not None else f"{source}: {m}" for line, m in problems
    )
    return PolicyError("\n".join(said), problems)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping: YAML keeps the
    last silently, so a second `defaults:` block could reopen what the first
    closed."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:  # a list or mapping as a key: no policy has one
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a name, not a list or mapping", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    try:
        _check_shape(text, source)
        # compose() keeps the node tree (with line numbers) for error messages;
        # a SafeLoader builds no Python objects from tags.
        root = yaml.compose(text, Loader=_StrictLoader)
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except PolicyError:
        raise  # the shape's own refusal, with its line
    except (ValueError, TypeError, OverflowError) as exc:
        # What the constructors raise past YAMLError: a date that is no date
        # (`2001-13-45`), `!!int 1x`, an integer past Python's digit limit.
        raise _refused(source, [(None, f"not valid YAML: {exc}")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            line: int | None = mark.line + 1
        elif isinstance(exc, yaml.reader.ReaderError):  # a control character: no mark
            line = text.count(chr(10), 0, exc.position) + 1
        else:
            line = None
        raise _refused(
            source, [(line, f"not valid YAML: {getattr(exc, 'problem', exc)}")]
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _refused(source, [(1, "the policy must be a mapping")])
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems: list[Problem] = []
        for error in exc.errors():
            loc = [str(p) for p in error["loc"]]
            path = ".".join(loc) or "(top)"
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append((line_of(root, loc), f"{path}: {message}"))
        raise _refused(source, problems) from None


def _check_shape(text: str, source: str) -> None:
    """Refuse a document nested deeper than `MAX_POLICY_DEPTH`, or larger than
    `MAX_POLICY_NODES` with its aliases expanded, before anything recursive
    reads it. PyYAML's parser is a state machine: its events cost no stack."""
    open_: list[tuple[str | None, int]] = []  # each open collection: its anchor, nodes before it
    sizes: dict[str, int] = {}  # nodes under each anchor seen so far
    nodes = 0
    for event in yaml.parse(text, Loader=_StrictLoader):
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, yaml.CollectionStartEvent):
            open_.append((event.anchor, nodes))
            if len(open_) > MAX_POLICY_DEPTH:
                raise _refused(source, [(line, f"nested deeper than {MAX_POLICY_DEPTH} levels")])
            nodes += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, before = open_.pop()
            if anchor is not None:
                sizes[anchor] = nodes - before
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            nodes += sizes.get(event.anchor or "", 1)
        if nodes > MAX_POLICY_NODES:
            raise _refused(
                source, [(line, f"more than {MAX_POLICY_NODES} values (aliases expanded)")]
            )


def line_of(node: Any, path: list[str]) -> int:
    """The 1-based line of the deepest node along ``path`` that exists."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    # An unknown key is reported at the key itself.
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                # A tagged union's tag (`hold` of rules.0.hold.ttl) is no key
                # of the file: step over it, the rest of the path is.
                continue
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def load_policy(path: Path) -> Policy:
    return parse_policy(read_policy_text(path), str(path))


def read_policy_text(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc.strerror}") from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(f"{path}: larger than {MAX_POLICY_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: not UTF-8") from None
    return text


def document_digest(text: str) -> str:
    """The SHA-256 of a policy document's text (UTF-8), in hex."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class PolicyDocument:
    """The text the policy in force was read from, and where: the policy
    file, a version stored in the gateway's database (``version``: its id), or
    the built-in default."""

    text: str
    source: Literal["file", "stored", "default"]
    version: int | None = None
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", document_digest(self.text))


@dataclass(frozen=True)
class _Stamp:
    mtime_ns: int
    size: int
    inode: int


class PolicySource:
    """The policy in force: from a file (reloaded on change), or a version
    handed to `adopt`, or the built-in default."""

    def __init__(
        self, path: Path | None, check: Callable[[Policy], str | None] | None = None
    ) -> None:
        """``check`` refuses, with its reason, a policy the deployment cannot
        enforce (rate limits across processes without a shared counter)."""
        self.path = path
        self._check = check
        self._stamp: _Stamp | None = None
        self.current = Policy()
        self.document = PolicyDocument(DEFAULT_DOCUMENT, "default")
        self.last_error: str | None = None
        if path is not None:
            self._stamp = _stamp(path)
            # At start-up a bad file is fatal.
            self.current, self.document = self._load(path)

    def check(self, text: str, source: str = "policy") -> Policy:
        """``text`` as the policy it would be, checked as a file is (and for
        this deployment); `PolicyError` names each problem's line."""
        policy = parse_policy(text, source)
        problem = self._check(policy) if self._check is not None else None
        if problem:
            raise _refused(source, [(None, problem)])
        return policy

    def _load(self, path: Path) -> tuple[Policy, PolicyDocument]:
        text = read_policy_text(path)
        return self.check(text, str(path)), PolicyDocument(text, "file")

    @property
    def stored_version(self) -> int:
        """The id of the stored version in force; 0 when none is."""
        return self.document.version or 0

    def adopt(self, policy: Policy, document: PolicyDocument) -> bool:
        """Put ``policy`` (read from a stored version, checked) in force,
        unless a newer stored version already is; True when it took effect."""
        if document.version is not None and document.version <= self.stored_version:
            return False
        self.current, self.document = policy, document
        self.last_error = None
        return True

    def reload_if_changed(self) -> bool:
        """Re-read the file if it changed on disk; True when a new policy took effect."""
        if self.path is None:
            return False
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return False
        if stamp is not None and stamp.size == 0:
            # Most likely caught between an editor's truncate and its write:
            # an empty file would put the defaults in force. Look again later.
            return False
        try:
            policy, document = self._load(self.path)
        except PolicyError as exc:
            if _stamp(self.path) != stamp:
                return False  # changed while being read: judge the next version
            self._stamp = stamp
            self.last_error = str(exc)
            logger.error("policy reload failed, keeping the previous policy: %s", exc)
            return False
        if _stamp(self.path) != stamp:
            return False  # changed while being read (half written?): read it again next time
        self._stamp = stamp
        self.current, self.document = policy, document
        self.last_error = None
        logger.info("policy reloaded from %s", self.path)
        return True


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _Stamp(st.st_mtime_ns, st.st_size, st.st_ino)
