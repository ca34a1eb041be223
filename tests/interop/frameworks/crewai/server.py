"""CrewAI A2A server with a deterministic fake LLM.

Usage: server.py PORT SEEN_FILE  -> serves http://127.0.0.1:PORT/ (card at /.well-known/agent-card.json,
also /.well-known/agent.json), appending one JSON line per HTTP request to SEEN_FILE.

CrewAI (OSS) has A2A *server support* but no HTTP server of its own: ``Agent(a2a=A2AServerConfig(...))``
describes the card and gives the agent ``to_agent_card(url)``, and ``crewai.a2a.utils.task.execute(agent,
context, event_queue)`` is the a2a-sdk ``AgentExecutor`` body (runs the agent on a Task built from the
user's text, answers a completed Task with an artifact). Hosting is left to the a2a-sdk (0.3.x)
``A2AStarletteApplication`` + ``DefaultRequestHandler``, done here, as in CrewAI's docs for self-hosting.
"""

from __future__ import annotations

import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # seen.py
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
warnings.filterwarnings("ignore")

import uvicorn  # noqa: E402
from a2a.server.agent_execution import AgentExecutor, RequestContext  # noqa: E402
from a2a.server.apps import A2AStarletteApplication  # noqa: E402
from a2a.server.events import EventQueue  # noqa: E402
from a2a.server.request_handlers import DefaultRequestHandler  # noqa: E402
from a2a.server.tasks import InMemoryTaskStore  # noqa: E402
from a2a.types import AgentSkill  # noqa: E402
from crewai import Agent  # noqa: E402
from crewai.a2a import A2AServerConfig  # noqa: E402
from crewai.a2a.utils import task as crewai_a2a_task  # noqa: E402
from fake_llm import EchoLLM  # noqa: E402
from seen import SeenMiddleware  # noqa: E402


class CrewAIExecutor(AgentExecutor):
    """a2a-sdk executor delegating to CrewAI's own A2A task execution."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        await crewai_a2a_task.execute(self.agent, context, event_queue)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await crewai_a2a_task.cancel(context, event_queue)


def main() -> None:
    port, seen_file = int(sys.argv[1]), sys.argv[2]
    url = f"http://127.0.0.1:{port}/"
    agent = Agent(
        role="echo",
        goal="Echo the user",
        backstory="A deterministic CrewAI echo agent",
        llm=EchoLLM(),
        verbose=False,
        a2a=A2AServerConfig(
            name="crewai-echo",
            description="Deterministic CrewAI echo agent",
            skills=[
                AgentSkill(
                    id="echo",
                    name="Echo",
                    description="Answers with what it was told.",
                    tags=["test"],
                )
            ],
        ),
    )
    card = agent.to_agent_card(url)
    handler = DefaultRequestHandler(
        agent_executor=CrewAIExecutor(agent), task_store=InMemoryTaskStore()
    )
    app = A2AStarletteApplication(agent_card=card, http_handler=handler).build()
    uvicorn.run(SeenMiddleware(app, seen_file), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
