"""Deterministic LangGraph graph (no LLM): answers ``langgraph says: <last user text>``."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, MessagesState, StateGraph


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b if isinstance(b, str) else str(b.get("text", ""))
            for b in content
            if isinstance(b, str) or b.get("type") == "text"
        )
    return str(content)


def answer(state: MessagesState) -> dict[str, list[AIMessage]]:
    user = next((m for m in reversed(state["messages"]) if isinstance(m, HumanMessage)), None)
    return {
        "messages": [AIMessage(content="langgraph says: " + _text(user.content if user else ""))]
    }


builder = StateGraph(MessagesState)
builder.add_node("answer", answer)
builder.add_edge(START, "answer")
builder.add_edge("answer", END)
graph = builder.compile()
graph.name = "langgraph_echo"
