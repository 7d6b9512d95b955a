"""Conformance suite: every QUERY.md case on every store backend, plus the real-world corpora."""
