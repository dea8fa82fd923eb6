"""tokenledger's processes: the write side per aggregate, the event store, the HTTP API, the
scheduler, the Kafka relay, and the composition root that wires them."""
