"""AG2 A2A server with a deterministic fake model.

Usage: server.py PORT SEEN_FILE  -> serves http://127.0.0.1:PORT/ (JSON-RPC at /,
card at /.well-known/agent-card.json and the legacy /.well-known/agent.json),
appending one JSON line per HTTP request to SEEN_FILE.

AG2 1.x (package `ag2`, no longer `autogen`): `ag2.a2a.A2AServer(agent)` then
`.build_jsonrpc(url=...)` -> a Starlette app on a2a-sdk 1.x (A2A 1.0 card).
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
from ag2 import Agent  # noqa: E402
from ag2.a2a import A2AServer, build_card  # noqa: E402
from fake_model import EchoConfig  # noqa: E402
from seen import SeenMiddleware  # noqa: E402


def main() -> None:
    port, seen_file = int(sys.argv[1]), sys.argv[2]
    url = f"http://127.0.0.1:{port}"
    agent = Agent("ag2-echo", "Deterministic AG2 echo agent", config=EchoConfig())
    server = A2AServer(agent)
    # build_card would derive a skill from the agent's name anyway; name it explicitly.
    card = build_card(
        agent,
        url=url,
        description="Deterministic AG2 echo agent",
        skills=[
            AgentSkill(
                id="echo", name="Echo", description="Answers with what it was told.", tags=["test"]
            )
        ],
    )
    app = SeenMiddleware(server.build_jsonrpc(url=url, card=card), seen_file)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
