"""The audit log: entries, their Merkle tree, signed checkpoints, proofs and evidence bundles."""

from lgsp_adapter.audit.entry import AuditEntry, AuditEvent, canonical_entry

__all__ = ["AuditEntry", "AuditEvent", "canonical_entry"]
