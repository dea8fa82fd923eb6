"""The log-follower kit: what every component that follows the log (projection runners, the token
verifier's tail, the Kafka relay) and every background worker (the checkpoint sealer, the usage
recorder's flusher, the idempotency housekeeping) share.

* ``follower.waiters.CursorWaiters``: callers waiting for a follower to reach a log cursor.
* ``follower.worker``: one background task's life (``BackgroundTask``), retried sessions with
  back-off (``keep_running``, ``Backoff``), periodic rounds (``periodically``, ``PeriodicWorker``)
  and the session advisory lock that makes one follower of a name active across processes
  (``take_session_lock``).

It imports nothing of ours but ``events``, so ``projections`` and ``services`` may both use it.
"""
