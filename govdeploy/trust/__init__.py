"""Roots of trust: keys, encryption at rest, model signatures and verified loading, approvals, the
audit trail and the signed serving records."""
