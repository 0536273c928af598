"""The HTTP API: app factory, auth dependencies, problem+json errors."""
