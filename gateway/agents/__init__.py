"""Calling registered agents, for every door: the A2A operations on an
upstream A2A agent (`handler`, `calls`, `passthrough`), gateway-run agents
(`vendor`, `gateway_run`), calls held for approval (`approvals`,
`approved`), the tasks they own (`recorded`, `mirror`, `reconcile`), and
what a handler works with (`admission`)."""
