"""`switchboard demo`: the gateway, three sample agents and the story that crosses them."""
