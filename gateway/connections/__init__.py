"""Connected accounts: the user's own rights at upstreams that trust only their own
authorization servers (docs/connections.md)."""
