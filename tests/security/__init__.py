"""security tests (issue 5)."""
