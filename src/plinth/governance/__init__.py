"""Governance: identity and access (tokens, roles, OIDC, rate limits), lineage, documentation
and data protection."""
