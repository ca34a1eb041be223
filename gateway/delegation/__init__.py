"""The one delegation pipeline and what it leans on: audit, approvals, tasks,
retry, breaker, handoffs, push relay, token exchange, keys."""
