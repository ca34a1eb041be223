"""MCP both ways: the `/mcp` front and the federation of upstream MCP servers."""
