"""fuzz tests (issue 5)."""
