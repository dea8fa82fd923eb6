"""The Kafka relay: publishes selected log events as CloudEvents (``relay``), the mapping of events to
records (``cloudevents``), topic creation (``topics``), the producer settings (``producer``) and the
reference consumer behind ``tokenledger subscribe`` (``subscriber``). See docs/kafka.md."""
