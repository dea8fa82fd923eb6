"""The scheduler: time-driven token events from the due index (see ``services.scheduler.worker``)."""

from services.scheduler.worker import SCHEDULER_ACTOR, Scheduler

__all__ = ["SCHEDULER_ACTOR", "Scheduler"]
