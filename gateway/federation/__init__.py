"""The MCP federation: upstream MCP servers and their tools, resources and
prompts -- registered, pinned, namespaced, called through the delegation
core -- and MCP servers offered as A2A agents (`as_a2a`). What `/mcp`, flows
and the REST API reach MCP servers through."""
