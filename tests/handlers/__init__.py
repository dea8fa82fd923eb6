"""Command handlers, given events, when a command, then events or an error, for every command of
``services.dispatch.HANDLERS`` and for the dispatcher itself, against the in-memory event store.
No PostgreSQL is started: no fixture of this package depends on the session's database fixtures
(``test_suite_shape`` checks it), so ``pytest tests/handlers`` runs alone in a few seconds."""
