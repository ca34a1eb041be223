"""Handoffs on the A2A front door: which skill a message is for, and its
contract (the breaker, retry and fallback settings that apply:
`gateway.delegation.resilience`).

Which skill (`skill_of`, the one function every way into an agent asks): A2A
messages carry no skill id, so a caller names it in metadata, and an agent
serving several skills reads it there. It can be named in `metadata.skill`
of the SendMessage request, of the message (in 0.3 HTTP+JSON the message may
also come as `request`, the proto's own field name) and of each of the
message's parts -- and every place is read, never "the first one wins":

* places that name a skill must all name the same one, as a string, and
  the card must declare it;
* a place naming another skill, a skill the card does not declare, or a
  skill that is not a string is an invalid request (-32602, naming the
  places): refused before any decision, nothing is sent upstream;
* naming none, the message is for the agent's only skill when its card
  declares exactly one, else for no skill in particular (None).

A part's metadata is a place like the others, so a part naming another skill
than the message is refused rather than stripped: stripping would change
what the caller sent without telling it, and an agent that reads the part
could then run something the caller never sees refused.

A message that continues a task (`taskId`) is for the skill the task was
started for (`message_skill`): the gateway records the skill decided with
the task (`a2a_tasks.skill`), because an agent continues a task's own skill
whatever the next message names. Naming another skill is refused (-32602);
naming none, the message is decided and stamped as the task's skill. A task
recorded for no skill in particular (started naming none, to an agent with
several, or recorded before the column existed) may be any skill: a message
continuing it is decided as for the strictest skill, whatever it names.

The request that then goes upstream names that skill, and only it, in both
metadata levels (`stamp_skill`): an agent that reads either place reads the
skill the policy decided for. A message that names no skill, to an agent
with several, goes upstream naming none: the agent picks, which is why the
policy decided it as for the strictest skill (`Delegations.strictest_skill`)
-- the gateway never names one the caller did not ask for, which would turn
a harmless request into the strictest operation.

The contract (`registry.contracts`, `check_contract`) applies to a message
that starts a task (no `taskId`): each of its data parts must match the
skill's schema, and a contract with no data part to check is a refusal too.
A message that names no skill, to an agent with several of which one has a
contract, is refused as well: the agent may pick the contracted skill, so the
caller must say which skill it means. The refusal is InvalidParams (-32602)
naming the part and the field (an RFC 6901 pointer), in the message and in
`data`; the agent is not called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from a2a.types import Message, SendMessageRequest
from a2a.utils.errors import InvalidParamsError
from google.protobuf.json_format import MessageToDict

from gateway.delegation.call import MessageSkill
from gateway.delegation.tasks import Owner, TaskRecords
from registry.contracts import violation

SKILL_KEY = "skill"
# (where, that place's metadata): where is the field's path, for the caller.
Place = tuple[str, Mapping[str, Any] | None]


def json_places(params: Mapping[str, Any]) -> list[Place]:
    """Every place a SendMessage request's JSON params (JSON-RPC `params`, or
    the HTTP+JSON body; A2A 1.0 or 0.3) can name a skill in. Read more widely
    than any one parser does: a place the SDK then ignores can only cause a
    refusal, never a skill the decision did not see."""
    places: list[Place] = [("params.metadata", _mapping(params.get("metadata")))]
    for key in ("message", "request"):  # "request": 0.3's proto field name
        message = params.get(key)
        if isinstance(message, Mapping):
            places.append((f"params.{key}.metadata", _mapping(message.get("metadata"))))
            for parts_key in ("parts", "content"):  # "content": 0.3's proto field name
                parts = message.get(parts_key)
                if isinstance(parts, list):
                    places.extend(
                        (f"params.{key}.{parts_key}[{i}].metadata", part.get("metadata"))
                        for i, part in enumerate(parts)
                        if isinstance(part, Mapping) and isinstance(part.get("metadata"), Mapping)
                    )
    return places


def proto_places(params: SendMessageRequest) -> list[Place]:
    """The places of a parsed request: what an agent receives."""
    message = params.message
    places: list[Place] = [
        ("params.metadata", params.metadata if params.HasField("metadata") else None),
        (
            "params.message.metadata",
            message.metadata if message.HasField("metadata") else None,
        ),
    ]
    places.extend(
        (f"params.message.parts[{i}].metadata", part.metadata)
        for i, part in enumerate(message.parts)
        if part.HasField("metadata")
    )
    return places


def json_inputs(params: Mapping[str, Any]) -> list[Any]:
    """What a SendMessage request's JSON hands the agent to act on, for the
    coordination rules (`policies.coordination`): every data part's data,
    under every spelling a parser accepts -- A2A 1.0 `{"data": ...}`, 0.3
    JSON-RPC `{"kind": "data", "data": ...}`, 0.3 HTTP+JSON (proto field
    names) `{"data": {"data": ...}}`, where a parser keeps only the inner one;
    the message as `message` or 0.3's `request`; its parts as `parts` or
    `content`. Read as widely as `json_places`: both the outer and the inner
    object of a part are inputs, so a key beside the inner one (which the
    agent never sees) must agree with the key inside it, or the call is
    refused -- a part can only add a key to agree with, never hide the one
    the agent reads."""
    inputs: list[Any] = []
    for key in ("message", "request"):
        message = params.get(key)
        if not isinstance(message, Mapping):
            continue
        for parts_key in ("parts", "content"):
            parts = message.get(parts_key)
            if not isinstance(parts, list):
                continue
            for part in parts:
                if not isinstance(part, Mapping) or "data" not in part:
                    continue
                data = part["data"]
                inputs.append(data)
                if isinstance(data, Mapping) and "data" in data:
                    inputs.append(data["data"])
    return inputs


def proto_inputs(message: Message) -> list[Any]:
    """`json_inputs` of a parsed message: its data parts' data."""
    return [MessageToDict(part.data) for part in message.parts if part.HasField("data")]


def json_task_id(params: Mapping[str, Any]) -> str | None:
    """The task a SendMessage request's JSON continues (`taskId`), read under
    every spelling a parser accepts (`taskId`, `task_id`; the message as
    `message` or 0.3's `request`). Spellings that disagree -- an empty one or
    a null included, which a parser may keep over the other -- are refused:
    which one a parser keeps is the parser's business, and the decision must
    be made for the task the agent will continue (the handler checks the
    parsed request against it, `checked_skill`)."""
    found = {
        f"params.{key}.{spelling}": message[spelling] or ""
        for key in ("message", "request")
        if isinstance(message := params.get(key), Mapping)
        for spelling in ("taskId", "task_id")
        if spelling in message and isinstance(message[spelling], str | None)
    }
    if len(set(found.values())) > 1:
        listing = ", ".join(f"{v!r} ({where})" for where, v in sorted(found.items()))
        raise InvalidParamsError(
            f"the message continues more than one task: {listing}; name one task, once",
            data={"field": sorted(found)[0]},
        )
    return next(iter(found.values()), None) or None


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def named_in(places: Iterable[Place], keys: Iterable[str] = (SKILL_KEY,)) -> dict[str, Any]:
    """{field path: value} for every place that names one of ``keys`` (any value)."""
    return {
        f"{where}.{key}": metadata[key]
        for where, metadata in places
        if metadata is not None
        for key in keys
        if key in metadata
    }


def skill_of(agent_id: str, card: Mapping[str, Any], places: Iterable[Place]) -> str | None:
    """The skill a message is for (see the module's doc), or None when unsaid
    and the agent has several (or no) skills. Raises InvalidParamsError."""
    return decide_named(agent_id, card_skill_ids(card), named_in(places))


def card_skill_ids(card: Mapping[str, Any]) -> list[Any]:
    return [s.get("id") for s in card.get("skills") or () if isinstance(s, Mapping)]


def decide_named(
    agent_id: str, offered: list[Any], named: Mapping[str, Any], noun: str = "skill"
) -> str | None:
    """The one ``noun`` the places in ``named`` name, among ``offered``; none
    named: the only one offered, else None. Raises InvalidParamsError when
    the places disagree, name something not offered, or a non-string."""
    if not named:
        return offered[0] if len(offered) == 1 and isinstance(offered[0], str) else None
    fields = sorted(named)
    shown = {k: v if isinstance(v, str) else repr(v) for k, v in named.items()}
    wrong = [where for where in fields if not isinstance(named[where], str)]
    if wrong:
        raise InvalidParamsError(
            f"{wrong[0]} must be a string naming one of agent {agent_id}'s {noun}s",
            data={"field": wrong[0], "named": shown},
        )
    distinct = sorted(set(named.values()))
    if len(distinct) > 1:
        listing = ", ".join(f"{named[where]!r} ({where})" for where in fields)
        raise InvalidParamsError(
            f"the request names more than one {noun}: {listing}; name one {noun}, "
            "the same in every place",
            data={"field": fields[0], "named": shown},
        )
    (chosen,) = distinct
    if chosen not in offered:
        raise InvalidParamsError(
            f"agent {agent_id} has no {noun} {chosen!r} ({', '.join(fields)})",
            data={noun: chosen, "field": fields[0], "named": shown},
        )
    return str(chosen)


async def message_skill(
    tasks: TaskRecords,
    agent_id: str,
    card: Mapping[str, Any],
    owner: Owner,
    places: Iterable[Place],
    task_id: str | None,
) -> MessageSkill:
    """What a message is for: its skill (`skill_of`), or -- continuing one of
    ``owner``'s tasks -- the task's (see the module's doc). Someone else's
    task, or none, is decided as a new message would be; the handler then
    answers "task not found" without anything being said about it."""
    named = named_in(places)
    if not task_id:
        return MessageSkill(decide_named(agent_id, card_skill_ids(card), named))
    owned, recorded = await tasks.skill_of(agent_id, owner, task_id)
    if not owned:  # someone else's, or none: the handler says "not found"
        return MessageSkill(decide_named(agent_id, card_skill_ids(card), named), task_id)
    if recorded is None:
        skill = decide_named(agent_id, card_skill_ids(card), named)
        return MessageSkill(skill, task_id, strictest=True)
    others = {where: v for where, v in named.items() if v != recorded}
    if others:
        listing = ", ".join(f"{v!r} ({where})" for where, v in sorted(others.items()))
        raise InvalidParamsError(
            f"task {task_id} is a task of skill {recorded!r}, and a message continuing it is "
            f"for that skill; it names {listing}: name {recorded!r} or no skill",
            data={"task": task_id, "skill": recorded, "field": sorted(others)[0]},
        )
    return MessageSkill(recorded, task_id)


def stamp_skill(params: SendMessageRequest, skill: str | None) -> None:
    """Make ``skill`` the only skill the request's metadata names, at both
    levels an agent may read one; None: it names none there."""
    message = params.message
    if skill is not None:
        params.metadata.update({SKILL_KEY: skill})
        message.metadata.update({SKILL_KEY: skill})
        return
    for holder, metadata in ((params, params.metadata), (message, message.metadata)):
        if holder.HasField("metadata") and SKILL_KEY in metadata:
            del metadata[SKILL_KEY]


def checked_skill(
    agent_id: str,
    card: Mapping[str, Any],
    decided: str | None,
    params: SendMessageRequest,
    *,
    task_id: str | None,
) -> str | None:
    """Check that the parsed request (what goes upstream) names no skill but
    ``decided`` -- the skill the front door decided from the caller's JSON --
    and continues the task ``task_id`` it was decided for (or none), then
    stamp the skill in both metadata levels, and return it. A disagreement
    means something was read differently before and after parsing: refused,
    never guessed."""
    continued = params.message.task_id or None
    if continued != task_id:
        raise InvalidParamsError(
            f"the request continues task {continued!r}, but it was admitted for "
            + ("a new task" if task_id is None else f"task {task_id!r}"),
            data={"field": "params.message.taskId"},
        )
    named = named_in(proto_places(params))
    found = decide_named(agent_id, card_skill_ids(card), named)
    if named and found != decided:
        raise InvalidParamsError(
            f"the request names skill {found!r}, but it was admitted for "
            + ("no skill in particular" if decided is None else repr(decided)),
            data={"skill": found, "field": sorted(named)[0]},
        )
    skill = found if decided is None else decided  # unsaid: the agent's only skill, or none
    stamp_skill(params, skill)
    return skill


def check_contract(
    agent_id: str,
    card: Mapping[str, Any],
    contracts: Mapping[str, Any],
    skill: str | None,
    message: Message,
) -> None:
    """Raise the InvalidParamsError a message breaking its skill's contract
    gets (see the module's doc): only a message that starts a task."""
    if message.task_id or not contracts:
        return
    if skill is None:
        contracted = sorted(s for s in card_skill_ids(card) if s in contracts)
        if contracted:
            reason = (
                f"agent {agent_id} checks handoff contracts for skill(s) {', '.join(contracted)}, "
                "and a message naming no skill may reach any of them: name the skill in "
                "metadata.skill"
            )
            raise InvalidParamsError(
                reason,
                data={
                    "skills": contracted,
                    "errors": [{"field": "params.metadata.skill", "message": reason}],
                },
            )
        return
    if skill not in contracts:
        return
    parts = (
        (i, MessageToDict(part.data))
        for i, part in enumerate(message.parts)
        if part.HasField("data")
    )
    refusal = contract_refusal(agent_id, skill, contracts[skill], parts)
    if refusal is not None:
        raise refusal


def contract_refusal(
    agent_id: str, skill: str, schema: Any, data_parts: Iterable[tuple[int, Any]]
) -> InvalidParamsError | None:
    """Why the message's data parts break the skill's contract, or None. Pure."""
    checked = False
    for index, data in data_parts:
        checked = True
        found = violation(schema, data)
        if found is not None:
            field_path = f"message.parts[{index}].data{found.pointer}"
            return InvalidParamsError(
                f"skill {skill} of agent {agent_id}: data part {index} does not match its "
                f"contract at {found.pointer or '/'}: {found.message}",
                data={
                    "skill": skill,
                    "part": index,
                    "pointer": found.pointer,
                    "errors": [{"field": field_path, "message": found.message}],
                },
            )
    if not checked:
        return InvalidParamsError(
            f"skill {skill} of agent {agent_id} takes a data part matching its contract; "
            "the message has none",
            data={
                "skill": skill,
                "errors": [{"field": "message.parts", "message": "no data part"}],
            },
        )
    return None
