"""The one error type the transports raise for things a user can fix (files, devices, formats).

Its message is a single line meant to be printed as is (the default script exits non-zero with
it); no PortAudio or ``wave`` traceback is ever shown for these cases.
"""

from __future__ import annotations


class TransportError(ValueError):
    """A transport cannot open its file or device: missing, invalid, busy or unsupported."""
