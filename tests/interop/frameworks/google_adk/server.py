"""Google ADK A2A server with a deterministic fake model.

Usage: server.py PORT SEEN_FILE [--compat-card]  -> serves http://127.0.0.1:PORT/ (card at
/.well-known/agent-card.json), appending one JSON line per HTTP request to SEEN_FILE.

ADK's default card is A2A 1.0-only (supportedInterfaces, no top-level ``url``), which a2a-sdk 0.3.x clients
reject. ``--compat-card`` adds a second JSONRPC interface with protocolVersion 0.3 at the same URL, so the
card also carries the legacy top-level fields (url, protocolVersion, preferredTransport).
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # seen.py
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
warnings.filterwarnings("ignore")

import uvicorn  # noqa: E402
from a2a.types import AgentCard, AgentInterface  # noqa: E402
from fake_llm import EchoLlm  # noqa: E402
from google.adk.a2a.utils.agent_card_builder import AgentCardBuilder  # noqa: E402
from google.adk.a2a.utils.agent_to_a2a import to_a2a  # noqa: E402
from google.adk.agents import LlmAgent  # noqa: E402
from seen import SeenMiddleware  # noqa: E402


def main() -> None:
    port, seen_file = int(sys.argv[1]), sys.argv[2]
    agent = LlmAgent(
        name="adk_echo",
        description="Deterministic ADK echo agent",
        model=EchoLlm(),
        instruction="Echo the user.",
    )
    card: AgentCard | None = None
    if "--compat-card" in sys.argv:
        card = asyncio.run(
            AgentCardBuilder(agent=agent, rpc_url=f"http://127.0.0.1:{port}/").build()
        )
        card.supported_interfaces.append(
            AgentInterface(
                url=f"http://127.0.0.1:{port}/", protocol_binding="JSONRPC", protocol_version="0.3"
            )
        )
    app = to_a2a(agent, host="127.0.0.1", port=port, protocol="http", agent_card=card)
    uvicorn.run(SeenMiddleware(app, seen_file), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
