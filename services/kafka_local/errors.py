"""Exceptions raised by the local Kafka broker tooling (``services.kafka_local``)."""

from __future__ import annotations


class KafkaLocalError(RuntimeError):
    """The local broker could not be prepared, started or stopped."""


class StartAbortedError(KafkaLocalError):
    """A start was cancelled (e.g. by SIGTERM) before the broker became ready."""


class BrokerExitedError(KafkaLocalError):
    """The broker's JVM exited when it was expected to keep running."""

    def __init__(self, returncode: int, log_tail: str) -> None:
        super().__init__(
            f"Kafka broker exited unexpectedly with code {returncode}; last broker log lines:\n{log_tail}"
        )
        self.returncode = returncode
        self.log_tail = log_tail
