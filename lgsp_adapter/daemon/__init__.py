"""The daemon's lifecycle: its settings, its log, its metrics, its duties towards the audit log
(start entries, the signing key, periodic checkpoints), and ``run``, which composes the
pipeline's parts into one process, starts them in order and drains them on a stop.

May import every layer below it (``http`` and down); only ``cli`` imports it.
"""
