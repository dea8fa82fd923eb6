"""The /v3 routes, one module per resource family."""
