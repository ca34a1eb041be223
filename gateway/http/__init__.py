"""Request-level pieces every door uses: authentication, problem documents, body limits."""
