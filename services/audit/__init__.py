"""Audit: tamper evidence over the event log (``verify``, ``checkpoints``), export and re-import of
the log as JSON lines (``export``, ``importer``), and point-in-time reads folded from the log
(``as_of``, ``replay``). The SQL half of the hash chain is migration 0004; ``chain`` is its Python
twin, so verification does not trust functions stored in the database it checks."""
