"""Secrets never leak into any output; TLS is always verified (issue 5)."""
