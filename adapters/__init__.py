"""Upstream protocol adapters (A2A 1.0/0.3, MCP, OpenAI-compatible, REST).

Each adapter implements one small interface and knows nothing of FastAPI.
The delegation front door that uses them arrives with the A2A issue.
"""
