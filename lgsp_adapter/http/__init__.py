"""The HTTP API over aiohttp: one routes module per area (packets in ``app``, ``audit``,
``registry``, ``inbox``, ``dead_letters``, ``agency_list``, ``health``), the OpenAPI document and
the auditors' page.

Routes translate HTTP into calls on the exchange, the registry, the store and the audit log,
and their errors back into answers. May import every layer below (``exchange`` and down);
not ``daemon`` or ``cli``.
"""
