"""The audit log: entries, their Merkle tree, signed checkpoints, proofs and evidence bundles.

It knows nothing of the daemon that writes it: entries come in, a store keeps them (``store``
here is the protocol; the SQLite and PostgreSQL tables live in the store layer). May import
``packets`` (agency codes, for searches) and ``errors``; never the settings, the store layer,
or anything of the pipeline, so an auditor's tool could use it alone. ``key_file`` keeps its
signing key, and serves the registry's secret box the same way.
"""

from lgsp_adapter.audit.entry import AuditEntry, AuditEvent, canonical_entry, log_event

__all__ = ["AuditEntry", "AuditEvent", "canonical_entry", "log_event"]
