"""WAV file transports that behave like a microphone and a speaker in real time.

* :class:`WavInputTransport` pushes a WAV as ``InputAudioRawFrame`` chunks paced like a
  microphone against the loop clock (absolute deadlines: chunk *k* is pushed when it would have
  been captured, at ``t0 + (k + 1) * chunk``), then keeps sending silence like a mic that is
  never unplugged. :attr:`WavInputTransport.input_done` is set once the file's last sample was
  pushed, so a script can end by itself.
* :class:`WavOutputTransport` records the speaker's timeline into a WAV (see
  :class:`transports.wavfile.WavRecorder`): silence where nothing played, audio where it played,
  and an interruption cut exactly where a listener would have stopped hearing.

``realtime=False`` (for fast tests): the input pushes the file as fast as the loop allows (the
silence after it is still paced in real time, so nothing spins), and the output writes audio as it
arrives, without silence.
"""

from __future__ import annotations

import asyncio
import os

from pipecat.frames.frames import CancelFrame, EndFrame, InputAudioRawFrame, StartFrame
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_transport import TransportParams

from transports.buffered_output import BufferedOutputTransport
from transports.errors import TransportError
from transports.wavfile import WavRecorder, check_wav, check_writable, read_wav_mono


class WavInputTransport(BaseInputTransport):
    """A microphone that plays a WAV file (16-bit PCM, any rate, mono or multi-channel).

    Args:
        path: the WAV to read; a missing or invalid file raises :class:`TransportError` here.
        chunk_ms: duration of each pushed frame.
        realtime: pace the file like a microphone (default) or push it as fast as possible.
        trailing_silence_ms: silence to push after the file; ``None`` (default) means forever.
        sample_rate: rate of the pushed frames (the file is resampled to it).
        params: extra pipecat transport parameters (audio input is always enabled).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        chunk_ms: int = 40,
        realtime: bool = True,
        trailing_silence_ms: int | None = None,
        sample_rate: int = 24000,
        params: TransportParams | None = None,
        **kwargs,
    ):
        if chunk_ms <= 0:
            raise ValueError("chunk_ms must be positive")
        check_wav(path)
        params = (params or TransportParams()).model_copy(
            update={
                "audio_in_enabled": True,
                "audio_in_sample_rate": sample_rate,
                "audio_in_channels": 1,
            }
        )
        super().__init__(params, **kwargs)
        self.path = os.fspath(path)
        self.chunk_ms = chunk_ms
        self.realtime = realtime
        self.trailing_silence_ms = trailing_silence_ms
        self.input_done = asyncio.Event()
        """Set when the last sample of the file has been pushed."""
        self.frames_pushed = 0
        self._pcm = b""
        self._feed_task: asyncio.Task | None = None

    async def setup(self, setup: FrameProcessorSetup):
        """Read and convert the whole file, off the loop."""
        await super().setup(setup)
        self._pcm = await asyncio.to_thread(read_wav_mono, self.path, self.sample_rate)

    async def start(self, frame: StartFrame):
        """Start capturing: the feed task begins pushing chunks."""
        await super().start(frame)
        await self.set_transport_ready(frame)
        if not self._feed_task:
            self._feed_task = self.create_task(self._feed())

    async def stop(self, frame: EndFrame):
        """Stop pushing audio."""
        await self._stop_feed()
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame):
        """Stop pushing audio at once."""
        await self._stop_feed()
        await super().cancel(frame)

    async def cleanup(self):
        """Make sure the feed task is gone."""
        await self._stop_feed()
        await super().cleanup()

    async def _stop_feed(self) -> None:
        if self._feed_task:
            await self.cancel_task(self._feed_task)
            self._feed_task = None

    async def _feed(self) -> None:
        loop = asyncio.get_running_loop()
        chunk_frames = self.sample_rate * self.chunk_ms // 1000
        chunk_bytes = 2 * chunk_frames
        chunk_secs = chunk_frames / self.sample_rate
        pcm = self._pcm
        silence_chunks = (
            None
            if self.trailing_silence_ms is None
            else -(-self.trailing_silence_ms // self.chunk_ms)
        )
        t0 = loop.time()
        k = 0
        offset = 0
        while True:
            in_file = offset < len(pcm)
            if not in_file and silence_chunks is not None and silence_chunks <= 0:
                break
            if self.realtime or not in_file:
                delay = t0 + (k + 1) * chunk_secs - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
                t0 = loop.time() - (k + 1) * chunk_secs  # silence is paced from here on
            if in_file:
                audio = pcm[offset : offset + chunk_bytes]  # the file's last chunk may be short
                offset += chunk_bytes
            else:
                audio = bytes(chunk_bytes)
                silence_chunks = None if silence_chunks is None else silence_chunks - 1
            await self.push_audio_frame(
                InputAudioRawFrame(audio=audio, sample_rate=self.sample_rate, num_channels=1)
            )
            self.frames_pushed += len(audio) // 2
            k += 1
            if in_file and offset >= len(pcm):
                self.input_done.set()
        self.input_done.set()


class WavOutputTransport(BufferedOutputTransport):
    """A speaker that records what a listener would hear into a WAV file.

    Args:
        path: the WAV to write (created or overwritten; its folder must exist).
        sample_rate: the file's rate; incoming audio at other rates is resampled.
        realtime: record the real-time timeline (default) or write audio as it arrives.
        tick_ms: how often the process's shared WAV clock moves played audio to the file (the
            speaker period: it paces how fast the output notices it has drained; an
            interruption and the start of audio are placed to the sample regardless).
        params: extra pipecat transport parameters.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        sample_rate: int = 24000,
        realtime: bool = True,
        tick_ms: int = 40,
        params: TransportParams | None = None,
        **kwargs,
    ):
        self.path = check_writable(path)
        super().__init__(sample_rate=sample_rate, params=params, **kwargs)
        self.realtime = realtime
        if not realtime:
            self.end_padding_secs = 0.0
        self.recorder = WavRecorder(
            self.path,
            self.playback,
            realtime=realtime,
            tick_secs=tick_ms / 1000,
            on_error=self._on_recorder_error,
        )
        """The clock thread writing the file (``started_at``, ``frames_written``)."""
        self.failure: str | None = None
        """Why the file could not be (fully) written, one line; the processor is then unusable
        and its error is pushed upstream, for the pipeline's owner to end the session."""
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _open_device(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self.recorder.open)
        except TransportError as e:
            await self._fail(str(e))

    def _on_recorder_error(self, message: str) -> None:
        """From the clock thread: report the failure on the loop."""
        if self._loop is not None and not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._fail(message), self._loop)

    async def _fail(self, message: str) -> None:
        if self.failure is None:
            self.failure = message
            await self.push_error(message, force_treat_as_permanent=True)

    async def _close_device(self, abort: bool) -> None:
        await asyncio.to_thread(self.recorder.close)

    def _queue_audio(self, pcm: bytes, item_id: str | None) -> None:
        self.recorder.write(pcm, item_id)

    def _flush_playback(self) -> int:
        return self.recorder.cut()
