"""The pipeline process under test in the transport bench (started by bench.transports.bargein).

    python -m bench.transports.client --side {ours,audio-process,stock} --endpoint URL
        --marks FILE [--gil]

The default agent pipeline as shipped (service, session and technical logs), between one side's
transports on the default (PulseAudio) devices:

* ``ours``: PyAudioInputTransport (20 ms mic period) and PyAudioOutputTransport (10 ms period),
  in this process;
* ``audio-process``: the same, with both streams in one audio child process;
* ``stock``: pipecat's LocalAudioTransport: 20 ms mic period (fixed in pipecat), 10 ms output
  writes (``audio_out_10ms_chunks=1``) to a blocking stream.

It records when the service parsed each ``speech_started`` and each response's first
``response.audio.delta`` (the clock of the figures), and with ``--gil`` runs a thread that
holds the GIL ~30 ms of every 40 ms (one long builtin call, then a 10 ms sleep). It runs until
its stdin closes, then writes the marks as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

GIL_HOLD_S = 0.030
GIL_FREE_S = 0.010


def hold_the_gil(stop: threading.Event) -> None:
    """Loop: one builtin call that holds the GIL ~30 ms (calibrated), then sleep 10 ms."""
    n = 200_000
    while True:  # calibrate: sum() over a range never releases the GIL
        t = time.perf_counter()
        sum(range(n))
        took = time.perf_counter() - t
        if took >= GIL_HOLD_S / 2:
            n = int(n * GIL_HOLD_S / took)
            break
        n *= 2
    while not stop.is_set():
        sum(range(n))
        time.sleep(GIL_FREE_S)


def make_transports(side: str):
    if side == "stock":
        from pipecat.transports.local.audio import LocalAudioTransport, LocalAudioTransportParams

        stock = LocalAudioTransport(
            LocalAudioTransportParams(
                audio_in_enabled=True,
                audio_in_sample_rate=24000,
                audio_out_enabled=True,
                audio_out_sample_rate=24000,
                audio_out_10ms_chunks=1,
                audio_out_end_silence_secs=0,
            )
        )
        return stock.input(), stock.output()
    from transports.pyaudio import PyAudioInputTransport, PyAudioOutputTransport

    audio = None
    if side == "audio-process":
        from transports.audio_process import AudioProcess

        audio = AudioProcess()
    return (
        PyAudioInputTransport(frames_per_buffer=480, audio_process=audio or False),
        PyAudioOutputTransport(audio_process=audio or False),
    )


async def run(args: argparse.Namespace) -> int:
    from pipelines.agent import build_agent_pipeline
    from pipelines.config import parse_config

    log_dir = tempfile.mkdtemp(prefix="bench-client-")
    config, _ = parse_config(
        [
            "--endpoint",
            args.endpoint,
            "--api-key",
            "K-bench-transports",
            "--model",
            "gpt-realtime",
            "--log-dir",
            log_dir,
        ],
        env={},
        dotenv_path=None,
    )
    input_t, output_t = make_transports(args.side)
    app = build_agent_pipeline(config, input=input_t, output=output_t)
    app.technical_log.attach()
    app.session_log.open_logs()
    marks: list[tuple[str, str, float]] = []
    seen: set[str] = set()
    receive = app.service.session.receive

    def timed_receive(event, now):
        kind = event.type
        if kind == "input_audio_buffer.speech_started":
            marks.append((kind, "", now))
        elif kind == "response.audio.delta":
            response = event.data.get("response_id", "")
            if response not in seen:
                seen.add(response)
                marks.append((kind, response, now))
        return receive(event, now)

    app.service.session.receive = timed_receive
    queued: dict[str, float] = {}
    if args.side != "stock":  # where the time goes: audio queued for the device, handed to it
        queue_audio = output_t._queue_audio

        def timed_queue_audio(pcm, item_id):
            queued.setdefault(item_id, time.monotonic())
            queue_audio(pcm, item_id)

        output_t._queue_audio = timed_queue_audio
    loop = asyncio.get_running_loop()
    stop_gil = threading.Event()
    if args.gil:
        threading.Thread(target=hold_the_gil, args=(stop_gil,), daemon=True).start()

    def wait_stdin() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(app.cancel("bench done")))

    threading.Thread(target=wait_stdin, daemon=True).start()
    code = await app.run()
    stop_gil.set()
    for item, at in queued.items():
        marks.append(("queued", item, at))
        handed = output_t.playback.first_played_at(item)
        if handed is not None:
            marks.append(("handed", item, handed))
    Path(args.marks).write_text(json.dumps(marks))
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=["ours", "audio-process", "stock"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--marks", required=True)
    parser.add_argument("--gil", action="store_true")
    args = parser.parse_args()
    from loguru import logger

    logger.remove()  # the console stays quiet; the technical log is written as shipped
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
