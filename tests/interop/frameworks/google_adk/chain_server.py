"""The first agent of the cross-vendor chain (tests/interop/test_chain.py): a
Google ADK agent served over A2A whose deterministic model hands the user's
question to its tool `ask_pricing`, which asks the agent ``TARGET_ID`` (a
pydantic-ai agent) through the gateway with a token exchanged from the one
this request came with (`onward.send`), and relays its answer.

Usage: chain_server.py PORT SEEN_FILE (and SWITCHBOARD_URL, AGENT_ID,
SECRET_FILE, TARGET_ID in the environment).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import AsyncGenerator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # seen, onward
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
warnings.filterwarnings("ignore")

import uvicorn  # noqa: E402
from google.adk.a2a.utils.agent_to_a2a import to_a2a  # noqa: E402
from google.adk.agents import LlmAgent  # noqa: E402
from google.adk.models import BaseLlm, LlmRequest, LlmResponse  # noqa: E402
from google.genai import types  # noqa: E402
from onward import send  # noqa: E402
from seen import SeenMiddleware  # noqa: E402


class ChainLlm(BaseLlm):
    """Asked something: call `ask_pricing` with it; given its answer, relay it."""

    model: str = "chain-llm"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        contents = llm_request.contents or []
        answered = [
            p.function_response
            for c in contents[-1:]
            for p in c.parts or []
            if p.function_response is not None
        ]
        if answered:
            result = (answered[0].response or {}).get("result")
            part = types.Part(text=f"concierge relays: {result}")
        else:
            question = next(
                "".join(p.text or "" for p in c.parts or [])
                for c in reversed(contents)
                if c.role == "user"
            )
            call = types.FunctionCall(name="ask_pricing", args={"question": question})
            part = types.Part(function_call=call)
        yield LlmResponse(content=types.Content(role="model", parts=[part]), turn_complete=True)


async def ask_pricing(question: str) -> str:
    """Ask the pricing agent, through the gateway."""
    return await send(os.environ["TARGET_ID"], [{"text": question}])


def main() -> None:
    port, seen_file = int(sys.argv[1]), sys.argv[2]
    agent = LlmAgent(
        name="concierge",
        description="Hands pricing questions to the pricing agent",
        model=ChainLlm(),
        instruction="Ask the pricing agent.",
        tools=[ask_pricing],
    )
    app = to_a2a(agent, host="127.0.0.1", port=port, protocol="http")
    uvicorn.run(SeenMiddleware(app, seen_file), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
