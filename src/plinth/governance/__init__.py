"""Governance: identity and access (tokens, roles), the audit chain, lineage, documentation
and data protection."""
