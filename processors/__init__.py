"""Pipecat frame processors of the agent pipeline.

:mod:`processors.voicelive` is the Voice Live client (protocol layer, connection, service); the
other modules write the session and technical logs, the report and the recording, drive the
console, redact secrets and run the user's tools.
"""
