"""Conformance suite: every docs/query.md case on every store backend, plus the real-world corpora."""
