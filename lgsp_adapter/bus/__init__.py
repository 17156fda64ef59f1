"""The exchange bus, a transport: packets published by the sender's daemon, consumed by the
recipient's, acknowledged once the pipeline has settled them.

``embedded.EmbeddedBus`` keeps its queue in the local store (the whole exchange in one
process); ``rabbitmq.RabbitBus`` carries packets between daemons, with ``topology`` (names and
arguments as data), ``declare`` and ``failover`` beside it. A bus publishes, consumes and
acknowledges; what a delivery's outcome means (a retry, a dead letter, a receipt) is decided in
``exchange``, which hands the bus a handler. May import ``store``, ``registry``, ``audit``,
``packets`` and ``errors``; never ``exchange`` or above.
"""
