"""LangGraph Agent Server (langgraph-api, in-memory runtime, as `langgraph dev` runs it) serving A2A.

Usage: server.py PORT SEEN_FILE -> serves http://127.0.0.1:PORT/ with the A2A card at
/.well-known/agent-card.json (the graph's default assistant, via DEFAULT_A2A_ASSISTANT_ID) and
JSON-RPC at /a2a/{assistant_id}; one JSON line per HTTP request appended to SEEN_FILE.
The graph (echo_graph.py) is deterministic: no LLM, no network, no license key.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# Appended, not inserted: `langgraph` is a namespace package, so a directory on the path
# that holds a langgraph/ folder (this one's parent) adds it as a portion of `langgraph`.
sys.path.append(os.path.dirname(HERE))  # seen.py

GRAPH_ID = "agent"


def main() -> None:
    port, seen_file = int(sys.argv[1]), sys.argv[2]
    # What `langgraph dev` (langgraph_api.cli.run_server) sets before importing the server;
    # langgraph_api.config reads these at import time.
    os.chdir(tempfile.mkdtemp(prefix="langgraph-"))  # .langgraph_api/ scratch stays out of the tree
    os.environ.update(
        MIGRATIONS_PATH="__inmem",
        DATABASE_URI=":memory:",
        REDIS_URI="fake",
        N_JOBS_PER_WORKER="1",
        LANGSERVE_GRAPHS=json.dumps({GRAPH_ID: os.path.join(HERE, "echo_graph.py") + ":graph"}),
        LANGSMITH_LANGGRAPH_API_VARIANT="local_dev",
        LANGGRAPH_RUNTIME_EDITION="inmem",
        LANGGRAPH_DISABLE_FILE_PERSISTENCE="true",
        LANGGRAPH_ALLOW_BLOCKING="true",  # seen.py appends to a file synchronously
        LANGGRAPH_API_URL=f"http://127.0.0.1:{port}",
        LANGGRAPH_NO_VERSION_CHECK="true",
        LANGSMITH_TRACING="false",
        LANGCHAIN_TRACING_V2="false",
        ALLOW_PRIVATE_NETWORK="true",
    )
    # The graph's default assistant has this id (uuid5 of the graph id); the root card uses it.
    from langgraph_api.graph import NAMESPACE_GRAPH

    os.environ["DEFAULT_A2A_ASSISTANT_ID"] = str(uuid.uuid5(NAMESPACE_GRAPH, GRAPH_ID))

    import uvicorn
    from langgraph_api.server import app
    from seen import SeenMiddleware

    uvicorn.run(SeenMiddleware(app, seen_file), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
