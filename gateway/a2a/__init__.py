"""The A2A front door: `/a2a/{agent_id}` for every registered agent."""
