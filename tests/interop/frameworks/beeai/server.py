"""BeeAI Framework A2A server with a deterministic fake chat model.

Usage: server.py PORT SEEN_FILE  -> serves http://127.0.0.1:PORT/ (card at /.well-known/agent-card.json,
also /.well-known/agent.json), appending one JSON line per HTTP request to SEEN_FILE.

A ``RequirementAgent`` (BeeAI's current agent) on ``EchoChatModel`` served by BeeAI's own
``beeai_framework.adapters.a2a.A2AServer`` (JSON-RPC, a2a-sdk 0.3 underneath: an A2A 0.3 card and
0.3 method names). ``A2AServer.serve()`` builds the app and calls ``uvicorn.run`` itself, with no hook to
wrap the app, so ``uvicorn.run`` in its module is swapped for one that wraps the app in SeenMiddleware.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # seen.py
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
os.environ.setdefault("BEEAI_LOG_LEVEL", "WARNING")
warnings.filterwarnings("ignore")

import uvicorn  # noqa: E402
from a2a.types import AgentSkill  # noqa: E402
from beeai_framework.adapters.a2a.serve import server as a2a_serve  # noqa: E402
from beeai_framework.adapters.a2a.serve.server import A2AServer, A2AServerConfig  # noqa: E402
from beeai_framework.agents.requirement import RequirementAgent  # noqa: E402
from beeai_framework.agents.requirement.prompts import RequirementAgentTaskPromptInput  # noqa: E402
from beeai_framework.memory import UnconstrainedMemory  # noqa: E402
from beeai_framework.serve.utils import LRUMemoryManager  # noqa: E402
from beeai_framework.template import PromptTemplate  # noqa: E402
from fake_model import EchoChatModel  # noqa: E402
from seen import SeenMiddleware  # noqa: E402


def main() -> None:
    port, seen_file = int(sys.argv[1]), sys.argv[2]
    agent = RequirementAgent(
        llm=EchoChatModel(),
        memory=UnconstrainedMemory(),
        name="beeai-echo",
        description="Deterministic BeeAI echo agent",
        # The user's own words, not "Your task: ..." (the default task template).
        templates={
            "task": PromptTemplate(schema=RequirementAgentTaskPromptInput, template="{{prompt}}")
        },
    )

    real_run = uvicorn.run

    def run_wrapped(app: Any, **kwargs: Any) -> None:
        kwargs["log_level"] = "warning"
        real_run(SeenMiddleware(app, seen_file), **kwargs)

    # a2a_serve.uvicorn IS the uvicorn module: this swaps uvicorn.run for this process.
    a2a_serve.uvicorn.run = run_wrapped  # type: ignore[attr-defined]
    server = A2AServer(
        config=A2AServerConfig(host="127.0.0.1", port=port, protocol="jsonrpc"),
        memory_manager=LRUMemoryManager(maxsize=100),
    )
    server.register(
        agent,
        name="beeai-echo",
        description="Deterministic BeeAI echo agent",
        url=f"http://127.0.0.1:{port}",
        send_trajectory=False,
        skills=[
            AgentSkill(
                id="echo", name="Echo", description="Answers with what it was told.", tags=["test"]
            )
        ],
    )
    server.serve()


if __name__ == "__main__":
    main()
