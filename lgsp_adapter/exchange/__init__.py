"""The exchange: one packet's walk through this daemon, step by step.

``intake`` takes a submission and keeps it durably; ``relay`` puts accepted deliveries on the
bus; ``receiving`` pushes a delivery to the recipient's system (``delivery``) and decides its
settlement; ``receipts`` tells the sender's system how it ended; ``arrival`` writes the status 01
a receiving adapter sends for an agency; ``inbox`` and ``dead_letters`` are where deliveries wait
for a person or a pulling system; ``axis_client`` calls the national axis as agency software does.

May import ``bus``, ``store``, ``registry``, ``audit``, ``translators``, ``packets`` and
``errors``; nothing above (no HTTP, no settings, no CLI): the daemon composes it.
"""
