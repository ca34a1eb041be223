"""What the front door established for one request, and what every A2A
handler works with: the admission, its call context, the shared parts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from a2a.auth.user import User
from a2a.server.context import ServerCallContext
from a2a.server.routes.common import ServerCallContextBuilder
from a2a.types import (
    AgentCard,
)
from a2a.utils.constants import VERSION_HEADER
from a2a.utils.errors import (
    A2AError,
)
from starlette.requests import Request

from adapters.a2a import A2AUpstreams
from gateway.agents.cards import sign_card
from gateway.agents.consents import AgentConsents
from gateway.connections.connection import Connection
from gateway.connections.errors import ConnectionRequired
from gateway.delegation.delegate import Delegate
from gateway.delegation.lost_tasks import LostTasks
from gateway.delegation.permits import Deferral
from gateway.delegation.pipeline import (
    Delegations,
    Grant,
)
from gateway.delegation.push import (
    PushRelays,
)
from gateway.delegation.resilience import Resilience
from gateway.delegation.tasks import Owner, TaskRecords
from policies.keys import SigningKey
from registry.fetch import SafeFetcher

ADMISSION = "switchboard.admission"
PRINCIPAL = "switchboard.principal"


@dataclass(frozen=True)
class Admission:
    """What `admit()` established for one request, read by the handler."""

    grant: Grant
    owner: Owner
    extensions: frozenset[str]
    # The skill the message is for, as the front door decided it from every
    # place the caller could name one, or from the task it continues
    # (`gateway.delegation.handoffs.message_skill`; None: it names none, to an
    # agent with several). The request that goes upstream names this one and
    # no other (`checked_skill`). For other operations, None.
    skill: str | None = None
    # Set by the pass-through when it found the agent down and the policy names
    # a fallback: the SDK path then hands the message over without calling.
    down: A2AError | None = None
    # The task the message continues, as the decision read it (None: it starts
    # one); the parsed request must continue this one (`checked_skill`).
    task_id: str | None = None
    # Decided as for the strictest skill whatever it names: it continues a task
    # recorded for no skill in particular.
    strictest: bool = False
    # Held back by a coordination rule in `mode: defer`: the request is kept
    # and made once that ends (`gateway.delegation.deferrals`).
    deferral: Deferral | None = None
    # The agent needs the user's own account there and they have not
    # connected it: the request is kept and made once they do
    # (`gateway.agents.consents`).
    consent: ConnectionRequired | None = None
    # The user's connection at such an agent, as admission read it (fresh):
    # the call goes with it, without reading the vault again.
    connection: Connection | None = None
    # The A2A door holds a message to this agent for its user's consent when
    # their connection fails after admission (revoked at the agent); other
    # callers (a flow, an MCP client) get `ConnectionRequired` and say it
    # their own way.
    holds_for_consent: bool = False
    # What the message hands the agent, as the coordination rules read it
    # (`json_inputs`): a fallback agent's admission reads it again.
    inputs: list[Any] | None = None

    @property
    def agent_id(self) -> str:
        return self.grant.agent.id

    @property
    def task_skill(self) -> str | None:
        """The skill a task this message starts is recorded for: the one it
        was decided for -- none when that was as for the strictest skill."""
        return None if self.strictest else self.skill


@dataclass(frozen=True)
class StreamLimits:
    max_seconds: float


class _GatewayUser(User):
    def __init__(self, subject: str) -> None:
        self._subject = subject

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def user_name(self) -> str:
        return self._subject


def call_context(
    request: Request,
    subject: str,
    key: str,
    value: Any,
    extensions: frozenset[str] = frozenset(),
) -> ServerCallContext:
    return admitted_context(subject, key, value, extensions, request.headers.get(VERSION_HEADER))


def admitted_context(
    subject: str, key: str, value: Any, extensions: frozenset[str], version: str | None
) -> ServerCallContext:
    """The call context of an admitted request in any binding: the admission
    under ``key`` and, of the caller's headers, only the `A2A-Version` given."""
    return ServerCallContext(
        user=_GatewayUser(subject),
        state={key: value, "headers": {VERSION_HEADER.lower(): version} if version else {}},
        requested_extensions=set(extensions),
    )


def handler_context(admission: Admission) -> ServerCallContext:
    """A call context for running `AgentHandler` from inside the gateway (the
    MCP front end's agent tools): the admission, and no caller headers."""
    return ServerCallContext(
        user=_GatewayUser(admission.owner.subject),
        state={ADMISSION: admission, "headers": {}},
        requested_extensions=set(admission.extensions),
    )


class AdmissionContextBuilder(ServerCallContextBuilder):
    """The call context carries the admission and, of the caller's headers, only
    `A2A-Version`, which the SDK's version check reads (its default builder
    copies every header, the caller's token included)."""

    def build(self, request: Request) -> ServerCallContext:
        admission: Admission = request.state.admission
        return call_context(
            request, admission.owner.subject, ADMISSION, admission, admission.extensions
        )


def admitted(value: object) -> Admission | None:
    """``value`` (read from an untyped request or call state) if it is an
    admission: a request met before its admission has none."""
    return value if isinstance(value, Admission) else None


def admission_of(context: ServerCallContext | None) -> Admission:
    """The front door's admission of the request this handler call serves."""
    assert context is not None
    admission: Admission = context.state[ADMISSION]
    return admission


@dataclass(frozen=True)
class FrontDoorParts:
    """What the handler works with; built in the app's lifespan."""

    delegations: Delegations
    tasks: TaskRecords
    upstreams: A2AUpstreams
    default_timeout_seconds: float
    stream_limits: StreamLimits
    signing_key: Callable[[], Awaitable[SigningKey]]
    public_url: str
    token_endpoint: str
    version: str
    fetcher: SafeFetcher
    push: PushRelays
    resilience: Resilience
    delegate: Delegate
    lost: LostTasks
    # host:port of the gRPC binding, when it is served (`gateway.a2a.grpc_door`).
    grpc_target: str | None = None
    # Agents called with each user's own token (`gateway.agents.consents`).
    consents: AgentConsents | None = None

    async def sign(self, card: AgentCard) -> AgentCard:
        """Sign with the current key, naming the gateway's JWKS as `jku`."""
        jku = self.public_url + "/.well-known/jwks.json"
        return sign_card(card, await self.signing_key(), jku)
