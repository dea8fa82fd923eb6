"""The scheduler: time-driven token events from the due index (see ``services.scheduler.worker``)."""

from services.composition import Runtime
from services.scheduler.worker import SCHEDULER_ACTOR, Scheduler

__all__ = ["SCHEDULER_ACTOR", "Scheduler", "scheduler_from"]


def scheduler_from(runtime: Runtime) -> Scheduler:
    """The scheduler worker of a process, configured from ``runtime.settings``."""
    return Scheduler(
        pool=runtime.pool,
        dispatcher=runtime.dispatcher,
        projections=runtime.projections,
        notifications=runtime.notifications,
        leads=runtime.settings.expiry_warning_leads,
        rotation_period=runtime.settings.rotation_period,
        clock=runtime.clock,
    )
