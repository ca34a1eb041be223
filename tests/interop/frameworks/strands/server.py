"""Strands A2A server with a deterministic fake model.

Usage: server.py PORT SEEN_FILE  -> serves http://127.0.0.1:PORT/ (card at /.well-known/agent-card.json),
appending one JSON line per HTTP request to SEEN_FILE.
"""

from __future__ import annotations

import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # seen.py
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
warnings.filterwarnings("ignore")

import uvicorn  # noqa: E402
from a2a.types import AgentSkill  # noqa: E402
from fake_model import EchoModel  # noqa: E402
from seen import SeenMiddleware  # noqa: E402
from strands import Agent  # noqa: E402
from strands.multiagent.a2a import A2AServer  # noqa: E402


def make_agent(context_id: str) -> Agent:
    """Build one fresh echo agent per A2A context."""
    return Agent(
        model=EchoModel(),
        name="strands-echo",
        description="Deterministic Strands echo agent",
        callback_handler=None,
    )


def main() -> None:
    port, seen_file = int(sys.argv[1]), sys.argv[2]
    server = A2AServer(
        agent_factory=make_agent,
        host="127.0.0.1",
        port=port,
        enable_a2a_compliant_streaming=True,
        # Strands makes a skill of each tool; an agent with none publishes a
        # card without skills, which the gateway refuses (A2A 1.0 §4.4.1).
        skills=[
            AgentSkill(
                id="echo", name="Echo", description="Answers with what it was told.", tags=["test"]
            )
        ],
    )
    app = SeenMiddleware(server.to_starlette_app(), seen_file)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
