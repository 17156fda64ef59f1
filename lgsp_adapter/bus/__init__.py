"""The exchange bus: packets published by the sender's daemon, consumed by the recipient's.

``embedded.EmbeddedBus`` runs the whole exchange in one process, durable in the local store; the
RabbitMQ bus carries it between daemons. Both publish what the outbox holds (``relay``) and
hand each delivery to the ``Receiver``, recording its settlement before acknowledging it.
"""
