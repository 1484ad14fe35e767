"""signals tests (issue 5)."""
