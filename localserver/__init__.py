"""The embedded Voice-Live-compatible server (``--local``, ``python -m localserver``).

It speaks the service's wire protocol over a real WebSocket with offline VAD, recognition and
speech, so the client can be run and tested end to end without Azure. It shares no code with the
client's protocol layer on purpose: it must not share the client's bugs.
"""
