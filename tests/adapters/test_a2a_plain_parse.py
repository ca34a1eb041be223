"""`plain_parse` fills what `ParseDict` fills, or declines; `required_present`
says what the SDK's required-fields check says. Both against the real thing,
on thousands of generated requests: plain ones, and ones with every kind of
member the plain reading must leave to protobuf."""

from __future__ import annotations

import random
from typing import Any, TypeVar

import pytest
from a2a.types import SendMessageRequest, SendMessageResponse, StreamResponse, Task
from a2a.utils.proto_utils import validate_proto_required_fields
from google.protobuf.json_format import Parse, ParseDict, ParseError
from google.protobuf.message import Message

from adapters.a2a_plain_parse import plain_parse, required_present

DOCUMENTS = 4000
M = TypeVar("M", bound=Message)


def _json(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(9 if depth < 40 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, 7, -3, 2**60, 2**70])
    if kind == 3:
        return rng.choice([1.5, -0.25, 1e300] * 3 + [float("nan"), float("inf")])
    if kind in (4, 5):
        return rng.choice(["x", "héllo", "", "日本"] * 3 + ["\ud800"])
    if kind == 6:
        return [_json(rng, depth + 1) for _ in range(rng.randrange(3))]
    # Chains deep enough to pass the plain reading's depth bound now and then.
    width = 1 if rng.random() < 0.5 else rng.randrange(3)
    return {f"k{i}": _json(rng, depth + 1) for i in range(width)}


def _text(rng: random.Random) -> Any:
    if rng.random() < 0.9:
        return rng.choice(["hi", "", "héllo", "日本"])
    return rng.choice(["\udfff", 3, None, True, ["a"]])


def _pick(rng: random.Random, *spellings: str) -> str:
    return rng.choice(spellings)


def _part(rng: random.Random) -> Any:
    part: dict[str, Any] = {}
    if rng.random() < 0.6:
        return {"text": _text(rng)}
    for _ in range(rng.randrange(1, 4)):
        member = rng.choice(["text", "url", "raw", "data", "mediaType", "media_type", "filename"])
        part[member] = {
            "raw": rng.choice(["aGk=", 5]),
            "data": _json(rng, 0),
        }.get(member, _text(rng))
    if rng.random() < 0.2:
        part["metadata"] = _json(rng, 0)
    return part if rng.random() < 0.95 else rng.choice(["part", None, [part]])


def _message(rng: random.Random) -> Any:
    message: dict[str, Any] = {}
    if rng.random() < 0.9:
        message[_pick(rng, "messageId", "message_id")] = _text(rng)
    if rng.random() < 0.8:
        message["role"] = rng.choice(
            ["ROLE_USER", "ROLE_AGENT"] * 4 + ["ROLE_BOGUS", 1, "user", None]
        )
    if rng.random() < 0.9:
        count = rng.randrange(3)
        message["parts"] = [_part(rng) for _ in range(count)] if rng.random() < 0.95 else "x"
    for member in ("contextId", "context_id", "taskId", "task_id"):
        if rng.random() < 0.2:
            message[member] = _text(rng)
    if rng.random() < 0.3:
        message["metadata"] = _json(rng, 0)
    if rng.random() < 0.2:
        message[_pick(rng, "referenceTaskIds", "extensions")] = [_text(rng) for _ in range(2)]
    if rng.random() < 0.05:
        message["unknownMember"] = 1
    return message


def _configuration(rng: random.Random) -> Any:
    configuration: dict[str, Any] = {}
    if rng.random() < 0.5:
        configuration["acceptedOutputModes"] = rng.choice([["text/plain"], "text", [None]])
    if rng.random() < 0.5:
        configuration[_pick(rng, "historyLength", "history_length")] = rng.choice(
            [3, 0, -1, 2**31, 2.0, 2.5, "4", True, None]
        )
    if rng.random() < 0.3:
        configuration["returnImmediately"] = rng.choice([True, False, "true", 0])
    if rng.random() < 0.1:
        configuration["taskPushNotificationConfig"] = {"url": "https://x.example/hook"}
    return configuration


def _request(rng: random.Random) -> Any:
    request: dict[str, Any] = {}
    if rng.random() < 0.95:
        request["message"] = _message(rng)
    if rng.random() < 0.3:
        request["configuration"] = _configuration(rng)
    if rng.random() < 0.2:
        request["metadata"] = _json(rng, 0)
    if rng.random() < 0.1:
        request["tenant"] = _text(rng)
    return request


def _reference(kind: type[M], document: Any) -> M | None:
    try:
        parsed: M = ParseDict(document, kind(), ignore_unknown_fields=True)
    except Exception:
        return None
    return parsed


def _read_alike(kind: type[M], document: Any, reference: M | None) -> bool:
    """Whether the plain reading took ``document``; asserts that what it took
    is protobuf's own reading and what it declined it left empty."""
    ours = kind()
    if not plain_parse(document, ours):
        assert ours == kind(), document  # left empty
        return False
    assert reference is not None, document
    # Serialized: presence of an empty message counts too.
    serialized = ours.SerializeToString(deterministic=True)
    assert serialized == reference.SerializeToString(deterministic=True), document
    return True


def _sdk_finds_all(message: SendMessageRequest) -> bool:
    try:
        validate_proto_required_fields(message)
    except Exception:
        return False
    return True


def test_a_plain_reading_is_protobufs_own_or_none() -> None:
    rng = random.Random(20261130)
    plain = declined = present = 0
    for _ in range(DOCUMENTS):
        document = _request(rng)
        reference = _reference(SendMessageRequest, document)
        if _read_alike(SendMessageRequest, document, reference):
            plain += 1
        else:
            declined += 1
        if reference is not None:
            said = required_present(reference)
            assert said == _sdk_finds_all(reference), document
            present += said
    # Neither side vacuous: plenty of each.
    assert plain > DOCUMENTS // 8 and declined > DOCUMENTS // 8, (plain, declined)
    assert present > DOCUMENTS // 20, present


def _stamp(rng: random.Random) -> Any:
    return rng.choice(
        ["2026-11-30T06:00:00Z", "2026-11-30T06:00:00.5+01:00", "2026-11-30T06:00:00", "x", 5]
    )


def _task(rng: random.Random) -> Any:
    task: dict[str, Any] = {"id": _text(rng)}
    if rng.random() < 0.8:
        task[_pick(rng, "contextId", "context_id")] = _text(rng)
    if rng.random() < 0.9:
        status: dict[str, Any] = {
            "state": rng.choice(["TASK_STATE_COMPLETED", "TASK_STATE_WORKING"] * 3 + [7, "DONE"])
        }
        if rng.random() < 0.5:
            status["timestamp"] = _stamp(rng)
        if rng.random() < 0.2:
            status["message"] = _message(rng)
        task["status"] = status
    if rng.random() < 0.5:
        task["artifacts"] = [
            {"artifactId": _text(rng), "parts": [_part(rng)]} for _ in range(rng.randrange(3))
        ]
    if rng.random() < 0.3:
        task["history"] = [_message(rng) for _ in range(rng.randrange(3))]
    if rng.random() < 0.2:
        task["metadata"] = _json(rng, 0)
    return task


def _answer(rng: random.Random) -> tuple[type[Message], Any]:
    """An agent's answer: a task or message, or a stream event."""
    kind = rng.randrange(4)
    if kind == 0:
        return Task, _task(rng)
    if kind == 1:
        member = rng.choice(["task", "message", "task"])
        value = _task(rng) if member == "task" else _message(rng)
        extra = {"message": _message(rng)} if rng.random() < 0.05 else {}  # both: a oneof
        return SendMessageResponse, {member: value, **extra}
    update: dict[str, Any] = {"taskId": _text(rng), "contextId": _text(rng)}
    if kind == 2:
        update["status"] = {"state": "TASK_STATE_WORKING", "timestamp": _stamp(rng)}
        return StreamResponse, {"statusUpdate": update}
    update["artifact"] = {"artifactId": "a", "parts": [_part(rng)]}
    update[rng.choice(["append", "lastChunk"])] = rng.choice([True, False, "yes"])
    return StreamResponse, {"artifactUpdate": update}


def test_an_answer_is_read_as_protobuf_reads_it_or_declined() -> None:
    rng = random.Random(30112026)
    plain = declined = 0
    for _ in range(DOCUMENTS):
        kind, document = _answer(rng)
        if _read_alike(kind, document, _reference(kind, document)):
            plain += 1
        else:
            declined += 1
    assert plain > DOCUMENTS // 8 and declined > DOCUMENTS // 8, (plain, declined)


@pytest.mark.parametrize(
    "document",
    [
        {"message": {"messageId": "m", "message_id": "n", "role": "ROLE_USER", "parts": []}},
        {"message": {"role": 1}},
        {"message": {"parts": [{"text": "a", "url": "b"}]}},
        {"configuration": {"historyLength": "3"}},
        {"metadata": {"a": [{"b": float("nan")}]}},
        {"message": {"messageId": "\ud800"}},
        {"message": None},
        {"message": {"parts": [{"data": {"a": 1}}]}},
    ],
)
def test_what_protobuf_reads_its_own_way_is_declined(document: dict[str, Any]) -> None:
    message = SendMessageRequest()
    assert not plain_parse(document, message)
    assert message == SendMessageRequest()


def test_deep_user_data_is_left_to_protobuf() -> None:
    deep: Any = "leaf"
    for _ in range(40):
        deep = {"d": deep}
    assert not plain_parse({"metadata": deep}, SendMessageRequest())
    shallow: Any = "leaf"
    for _ in range(10):
        shallow = {"d": shallow}
    message = SendMessageRequest()
    assert plain_parse({"metadata": shallow}, message)
    assert message == ParseDict({"metadata": shallow}, SendMessageRequest())


def test_a_request_with_nothing_missing_is_present_and_a_missing_part_is_not() -> None:
    request = SendMessageRequest()
    document = {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}
    assert plain_parse(document, request)
    assert required_present(request) and _sdk_finds_all(request)
    del request.message.parts[:]
    assert not required_present(request) and not _sdk_finds_all(request)


def test_other_message_types_are_read_alike() -> None:
    document = {
        "id": "t1",
        "contextId": "c1",
        "status": {"state": "TASK_STATE_WORKING"},
        "artifacts": [{"artifactId": "a", "parts": [{"text": "x"}]}],
        "metadata": {"n": 1, "l": [True, None, "s"]},
    }
    task = Task()
    assert plain_parse(document, task)
    assert task == ParseDict(document, Task())
    stamped = {
        **document,
        "status": {"state": "TASK_STATE_WORKING", "timestamp": "2026-01-01T00:00:00Z"},
    }
    task = Task()
    assert plain_parse(stamped, task)
    assert task == ParseDict(stamped, Task())


@pytest.mark.parametrize(
    "stamp",
    ["2026-11-30T06:00:00.123456Z", "2026-11-30T06:00:00+02:00", "2026-11-30T06:00:00", "x", 5, {}],
)
def test_a_timestamp_is_read_as_protobuf_reads_it_or_declined(stamp: Any) -> None:
    document = {"id": "t", "status": {"state": "TASK_STATE_COMPLETED", "timestamp": stamp}}
    task = Task()
    try:
        reference: Task | None = ParseDict(document, Task())
    except Exception:
        reference = None
    if plain_parse(document, task):
        assert task == reference
        assert task.status.HasField("timestamp")
    else:
        assert task == Task()
        assert reference is None  # every stamp here protobuf reads, the plain reading reads


def test_a_text_is_read_as_protobufs_parse_reads_it() -> None:
    text = '{"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "日本"}]}}'
    message = SendMessageRequest()
    assert plain_parse(text.encode(), message)
    assert message == Parse(text, SendMessageRequest())
    refused = [
        b'{"message": {"messageId": "m", "messageId": "n"}}',  # Parse: duplicate key
        '{"message": {"messageId": "é"}}'.encode("utf-16"),  # json alone would read it
        b'{"message": ',
    ]
    for body in refused:
        assert not plain_parse(body, SendMessageRequest())
        with pytest.raises((ParseError, UnicodeDecodeError)):
            Parse(body, SendMessageRequest())
