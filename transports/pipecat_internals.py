"""The only places this project reaches past pipecat's public API, kept in one module.

Checked against pipecat-ai 1.14.0 (pinned in pyproject.toml). On an upgrade, read
``pipecat/transports/base_input.py`` and ``base_output.py`` and check what each function below
names under "check"; the transport tests (tests/transports, tests/devices) exercise both paths.
Everything else in this project uses pipecat's public frames, processors and lifecycle only
(``_register_event_handler`` / ``_call_event_handler`` are pipecat's documented way for a
subclass to declare and fire its own events).
"""

from __future__ import annotations

from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport

PIPECAT_VERSION_CHECKED = "1.14.0"


def queue_input_audio(transport: BaseInputTransport, frame: InputAudioRawFrame) -> bool:
    """Do what ``await transport.push_audio_frame(frame)`` does, from a plain callback.

    The public coroutine would need a task per microphone period (50 a second) just to put the
    frame on a queue. Returns False before ``start()`` has created the queue (the caller then
    uses the public coroutine). Check: ``BaseInputTransport.push_audio_frame`` still only puts
    the frame on ``self._audio_in_queue`` when ``self._params.audio_in_enabled and not
    self._paused``.
    """
    queue = getattr(transport, "_audio_in_queue", None)
    if queue is None:
        return False
    if transport._params.audio_in_enabled and not transport._paused:
        queue.put_nowait(frame)
    return True


async def process_frame_bypassing_media_sender(
    transport: BaseOutputTransport, frame: Frame, direction: FrameDirection
) -> None:
    """Run ``FrameProcessor.process_frame`` (metrics, lifecycle bookkeeping) for an audio frame
    without ``BaseOutputTransport.process_frame``, whose media sender would queue, re-chunk and
    pace it (see :mod:`transports.buffered_output`). Check: ``BaseOutputTransport.process_frame``
    still hands ``OutputAudioRawFrame`` to its media sender and does nothing else with it.
    """
    await FrameProcessor.process_frame(transport, frame, direction)
