"""What an agent behind Switchboard runs on its side: the token-exchange
`httpx.Auth` for calling onward (standalone: httpx and the standard library
only, so it can be used from an agent's own environment)."""
