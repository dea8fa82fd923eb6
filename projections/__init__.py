"""Read models built from the event log.

A projection is a pure reducer: ``apply(event)`` returns the SQL statements that bring its tables up to
date with that event, and touches nothing itself. The runtime (``projections.runtime``) tails the log,
runs those statements and saves the projection's checkpoint in the same transaction, so a crash
never leaves a read model and its checkpoint disagreeing. This package never imports ``services``:
the composition root hands the runtime a ``LogSource`` and a connection pool.
"""
