"""Property-based fuzzing of the sans-I/O protocol layer (issue 5)."""
