"""A newcomer's friction with the command line (issue 57, items 16 and 18):
every option says what it is for, and the flow demo says how long its tokens
last and how to get new ones."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from gateway.cli import build_parser
from gateway.demo import flow_story
from tests.gateway.cli.test_cli import run
from tests.support.gateway import Gateway


def _arguments(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _arguments(sub, f"{path} {name}")
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield path, action


def test_every_option_and_argument_has_help_text() -> None:
    found = list(_arguments(build_parser(), "switchboard"))
    assert len(found) > 150  # the walk reached every command
    missing = [
        f"{path} {'/'.join(action.option_strings) or action.dest}"
        for path, action in found
        if not action.help  # argparse.SUPPRESS is a deliberate choice: a hidden option
    ]
    assert missing == []


class _Gateway:
    """What `_explore` reads of the demo's gateway process."""

    def __init__(self, real: Gateway) -> None:
        self.url = real.url
        self.data_dir = real.settings.data_dir
        self.real = real
        self.lifetimes: list[int] = []

    def token(self, subject: str, scopes: str, ttl: int = 600) -> str:
        self.lifetimes.append(ttl)
        return f"token-of-{subject}"


def test_the_flow_demo_says_when_its_tokens_expire_and_how_to_renew_them(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flow_story, "wait_for_ctrl_c", lambda out: None)
    lines: list[str] = []
    demo: Any = _Gateway(gateway)
    flow_story._explore(demo, lines.append)
    text = "\n".join(lines)
    assert demo.lifetimes == [600, 600]
    assert "token-of-maria   # admin (maria), expires in 10 min" in text, text
    assert "token-of-dana   # dana, expires in 10 min" in text, text
    commands = [line.split("=$(", 1)[1].rstrip(")") for line in lines if "token issue" in line]
    assert len(commands) == 2, text
    subjects = []
    for command in commands:
        words = shlex.split(command)
        assert words[:3] == ["switchboard", "token", "issue"], command
        issued = run(*words[1:])  # the command as printed, run against the gateway's data
        assert issued.returncode == 0, issued.stderr
        claims = jwt.decode(issued.stdout.strip(), options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 600
        subjects.append((claims["sub"], set(claims["scope"].split())))
    users = set(flow_story.USER_SCOPES.split())
    assert subjects == [("maria", {"switchboard:admin"}), ("dana", users)]
