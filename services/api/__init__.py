"""The HTTP API: aiohttp application, Konnect Identity v3 routes and our extensions, problem+json."""
