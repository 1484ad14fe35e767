"""Runnable examples for the default script (``--tools pipelines/examples/tools.py``)."""
