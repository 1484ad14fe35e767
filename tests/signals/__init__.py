"""SIGTERM and Ctrl-C leave complete logs, a valid WAV and a clean close (issue 5)."""
