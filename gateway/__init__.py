"""Switchboard: the service (app factory, settings, CLI, routers)."""
