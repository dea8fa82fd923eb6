"""The PostgreSQL adapter of the event store port (``services.ports``): schema and migrations,
append with optimistic concurrency, stream reads, gap-safe tail."""

from services.eventstore.store import PostgresEventStore

__all__ = ["PostgresEventStore"]
