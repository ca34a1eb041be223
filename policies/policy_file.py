"""Loading the policy file (YAML) and reloading it when it changes.

A bad file is an error that names the line; on reload a bad file is logged and
the previous policy stays in force, so an operator's typo never opens (or
closes) the gateway by accident. The swap is one reference assignment: a
request in flight finishes with the policy it started with.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from policies.policy import Policy

logger = logging.getLogger(__name__)
MAX_POLICY_BYTES = 4 * 1024 * 1024


class PolicyError(ValueError):
    """The policy file cannot be used; the message names the file and line."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping: YAML keeps the
    last silently, so a second `defaults:` block could reopen what the first
    closed."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    try:
        # compose() keeps the node tree (with line numbers) for error messages;
        # a SafeLoader builds no Python objects from tags.
        root = yaml.compose(text, Loader=_StrictLoader)
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f"{source}:{mark.line + 1}"
        elif isinstance(exc, yaml.reader.ReaderError):  # a control character: no mark
            where = f"{source}:{text.count(chr(10), 0, exc.position) + 1}"
        else:
            where = source
        raise PolicyError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(f"{source}:1: the policy must be a mapping")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [str(p) for p in error["loc"]]
            path = ".".join(loc) or "(top)"
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{source}:{line_of(root, loc)}: {path}: {message}")
        raise PolicyError("\n".join(problems)) from None


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
    return parse_policy(text, str(path))


@dataclass(frozen=True)
class _Stamp:
    mtime_ns: int
    size: int
    inode: int


class PolicySource:
    """The policy in force: from a file (reloaded on change) or the built-in default."""

    def __init__(
        self, path: Path | None, check: Callable[[Policy], str | None] | None = None
    ) -> None:
        """``check`` refuses, with its reason, a policy the deployment cannot
        enforce (rate limits across processes without a shared counter)."""
        self.path = path
        self._check = check
        self._stamp: _Stamp | None = None
        self.current = Policy()
        self.last_error: str | None = None
        if path is not None:
            self._stamp = _stamp(path)
            self.current = self._load(path)  # at start-up a bad file is fatal

    def _load(self, path: Path) -> Policy:
        policy = load_policy(path)
        problem = self._check(policy) if self._check is not None else None
        if problem:
            raise PolicyError(f"{path}: {problem}")
        return policy

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
            policy = self._load(self.path)
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
        self.current = policy
        self.last_error = None
        logger.info("policy reloaded from %s", self.path)
        return True


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _Stamp(st.st_mtime_ns, st.st_size, st.st_ino)
