"""Sessions per machine: K concurrent real-time conversations through the batch runner.

``python -m bench.sessions [--sizes 25 50 100 200 300] [--workers 1 2] [--seconds 24]``

For each K and worker count, the batch runner (``python -m pipelines.batch``, WAV in and out,
as a user runs it) holds K conversations at once against a cheap scripted Voice Live server in a
process of its own. Every conversation is a ``--seconds`` long microphone WAV; the server answers
a turn after every 6 s of microphone audio with 2 s of agent audio (sent at twice real time, as the
service does) right after ``speech_stopped``. Measured, side by side in one run:

* client CPU (the batch parent and its workers, from the kernel's counters) as % of one core,
  in all and per session; the server's CPU is reported apart;
* RSS of the workers, in all and per session (and the marginal cost of one more session);
* on time: the share of answers the client kept up with: the microphone reached the server within
  100 ms of real time during that turn (the server times every append against the audio it
  carries, per session id) and the answer's first audio was played within 100 ms of
  ``speech_stopped`` (from the conversation's ``report.json``).

Writes ``bench/results/sessions.md`` and ``sessions.png`` (the curve).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
RATE = 24000
TURN_EVERY_S = 6.0
ANSWER_S = 2.0
ON_TIME_MS = 100.0

# -- the scripted server (runs in its own process: python -m bench.sessions --serve PORT OUT) ----


async def _serve(port_file: Path, out: Path) -> None:
    from websockets.asyncio.server import serve

    lags: dict[str, list[tuple[float, float]]] = {}  # session id -> (audio position s, lag ms)
    # conn -> (CLOCK_MONOTONIC s, audio s so far), for bench.session_cost's steady state
    arrivals: dict[int, list[tuple[float, float]]] = {}
    answers: list[dict[str, Any]] = []
    answer_pcm = (
        np.random.default_rng(7).integers(-3000, 3000, int(ANSWER_S * RATE), dtype=np.int16)
    ).tobytes()
    chunk = RATE // 10 * 2
    deltas = [
        base64.b64encode(answer_pcm[i : i + chunk]).decode()
        for i in range(0, len(answer_pcm), chunk)
    ]

    async def handler(ws: Any) -> None:
        cid = id(ws)
        n = 0

        async def send(event: dict[str, Any]) -> None:
            nonlocal n
            n += 1
            event.setdefault("event_id", f"event_{n}")
            await ws.send(json.dumps(event))

        session = {"id": f"sess_{cid}", "model": "bench", "expires_at": int(time.time()) + 3600}
        lag = lags.setdefault(session["id"], [])
        await send({"type": "session.created", "session": session})
        audio_bytes = 0
        t0: float | None = None
        next_turn = TURN_EVERY_S
        turn = 0
        try:
            async for message in ws:
                event = json.loads(message)
                kind = event.get("type")
                if kind == "session.update":
                    await send(
                        {
                            "type": "session.updated",
                            "session": {**session, **event.get("session", {})},
                        }
                    )
                elif kind == "input_audio_buffer.append":
                    now = time.monotonic()
                    size = len(event.get("audio", "")) * 3 // 4
                    if t0 is None:
                        t0 = now - size / 2 / RATE
                    audio_bytes += size
                    pos = audio_bytes / 2 / RATE
                    lag.append((pos, (now - (t0 + pos)) * 1000.0))
                    arrivals.setdefault(cid, []).append((now, pos))
                    if pos >= next_turn:
                        next_turn += TURN_EVERY_S
                        turn += 1
                        asyncio.ensure_future(answer(turn, send))
        except Exception:  # noqa: BLE001 - a client that goes away ends its handler
            pass

    async def answer(turn: int, send: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await _answer(turn, send)
        except ConnectionClosed:  # the client ended its session during an answer
            pass

    async def _answer(turn: int, send: Any) -> None:
        rid, iid = f"resp_{turn}_{time.monotonic_ns()}", f"item_{turn}_{time.monotonic_ns()}"
        await send(
            {"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": f"u{iid}"}
        )
        await send(
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 1, "item_id": f"u{iid}"}
        )
        await send({"type": "response.created", "response": {"id": rid, "status": "in_progress"}})
        start = time.monotonic()
        for k, delta in enumerate(deltas):
            # 100 ms chunks at 2x
            await asyncio.sleep(max(0.0, start + k * 0.05 - time.monotonic()))
            await send(
                {"type": "response.audio.delta", "response_id": rid, "item_id": iid, "delta": delta}
            )
        await send(
            {
                "type": "response.audio_transcript.done",
                "response_id": rid,
                "item_id": iid,
                "transcript": "An answer.",
            }
        )
        await send(
            {
                "type": "response.done",
                "response": {"id": rid, "status": "completed", "usage": {"total_tokens": 1}},
            }
        )

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port_file.write_text(str(server.sockets[0].getsockname()[1]))
        await stop.wait()
    stats = {"lags": lags, "answers": answers, "arrivals": list(arrivals.values())}
    out.write_text(json.dumps(stats))


# -- the client side ----------------------------------------------------------------------------


@dataclass
class Run:
    sessions: int
    workers: int
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    ok: int = 0
    answers: int = 0
    on_time: int = 0
    mic_lag_p99_ms: float = 0.0
    latency_p99_ms: float | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def cpu_pct(self) -> float:
        return 100.0 * self.client_cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def on_time_share(self) -> float:
        return self.on_time / self.answers if self.answers else 0.0


def _tree_rss(proc: Any) -> float:
    import psutil

    total = 0
    for p in proc.children(recursive=True):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 1e6


def link_conversations(tmp: Path, k: int) -> Path:
    """A folder of ``k`` conversations, each a link to ``tmp/conversation.wav``."""
    convs = tmp / f"convs_{k}"
    convs.mkdir(exist_ok=True)
    for i in range(k):
        target = convs / f"c{i:03d}.wav"
        if not target.exists():
            os.symlink(tmp / "conversation.wav", target)
    return convs


def start_server(tmp: Path, stats_file: Path, timeout: float = 30.0) -> tuple[Any, int]:
    """Start the scripted server in its own process; returns it and its port once it listens
    (``RuntimeError`` if it does not within ``timeout``). SIGTERM ends it and writes the stats."""
    port_file = tmp / "port"
    port_file.unlink(missing_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.sessions", "--serve", str(port_file), str(stats_file)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + timeout
    while not port_file.exists() or not port_file.read_text():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"the scripted server did not start (exit {server.poll()})")
        time.sleep(0.05)
    return server, int(port_file.read_text())


def run_once(k: int, workers: int, seconds: float, tmp: Path) -> Run:
    import psutil

    run = Run(k, workers)
    convs = link_conversations(tmp, k)
    out = tmp / f"out_{k}_{workers}"
    shutil.rmtree(out, ignore_errors=True)
    stats_file = tmp / f"stats_{k}_{workers}.json"
    server, port = start_server(tmp, stats_file)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [
        sys.executable,
        "-m",
        "pipelines.batch",
        str(convs),
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--per-worker",
        str(math.ceil(k / workers)),
        "--max-connects-per-minute",
        "1000000",
        "--endpoint",
        f"http://127.0.0.1:{port}",
        "--api-key",
        "bench-key-0123456789",
        "--model",
        "bench",
        "--idle-grace",
        "0.5",
        "--plain",
    ]
    started = time.monotonic()
    log = open(tmp / f"batch_{k}_{workers}.out", "w+")
    client = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    ps = psutil.Process(client.pid)
    while True:
        # wait4: the batch's own CPU plus every worker it reaped (exact, unlike polling)
        pid, _, usage = os.wait4(client.pid, os.WNOHANG)
        if pid:
            break
        try:
            run.peak_rss_mb = max(run.peak_rss_mb, _tree_rss(ps))
        except psutil.Error:
            pass
        time.sleep(0.5)
    client.returncode = 0
    run.wall_s = time.monotonic() - started
    run.client_cpu_s = usage.ru_utime + usage.ru_stime
    log.seek(0)
    output = log.read()
    log.close()
    server_ps = psutil.Process(server.pid)
    st = server_ps.cpu_times()
    run.server_cpu_s = st.user + st.system
    server.send_signal(signal.SIGTERM)
    server.wait(30)
    stats = json.loads(stats_file.read_text())
    all_lags = [lag for conn in stats["lags"].values() for _, lag in conn]
    run.mic_lag_p99_ms = float(np.percentile(all_lags, 99)) if all_lags else 0.0
    summary = (
        json.loads((out / "summary.json").read_text())
        if (out / "summary.json").exists()
        else {"conversations": []}
    )
    run.ok = sum(c["ok"] for c in summary["conversations"])
    run.failures = [
        f"{c['conversation']}: {c['failure']}" for c in summary["conversations"] if not c["ok"]
    ][:5]
    latencies: list[float] = []
    for conv in sorted(out.glob("*/report.json")):
        report = json.loads(conv.read_text())
        lags = stats["lags"].get((report.get("session_ids") or [""])[0], [])
        for n, turn in enumerate(report.get("turns", []), 1):
            run.answers += 1
            latency = turn.get("first_audio_latency_ms")
            if latency is not None:
                latencies.append(latency)
            # the microphone during this turn (the server answers every TURN_EVERY_S of audio)
            window = [lag for pos, lag in lags if (n - 1) * TURN_EVERY_S < pos <= n * TURN_EVERY_S]
            mic_ok = not window or max(window) <= ON_TIME_MS
            if latency is not None and latency <= ON_TIME_MS and mic_ok:
                run.on_time += 1
    run.latency_p99_ms = (
        float(np.percentile(latencies, 99))
        if len(latencies) >= 100
        else (max(latencies) if latencies else None)
    )
    if run.ok < k:
        print(output[-2000:])
    return run


def write_conversation(path: Path, seconds: float) -> None:
    pcm = np.random.default_rng(1).integers(-300, 300, int(seconds * RATE), dtype=np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def report(runs: list[Run], seconds: float) -> str:
    lines = [
        "# Sessions per machine (`python -m bench.sessions`)",
        "",
        f"{os.cpu_count()} cores. Each session: a {seconds:.0f} s microphone WAV paced in real "
        f"time, an answer of {ANSWER_S:.0f} s every {TURN_EVERY_S:.0f} s, WAV out; the batch "
        "runner as shipped. Client CPU = batch parent + workers (% of one core); on time = mic "
        "within 100 ms of real time and first audio played within 100 ms.",
        "",
        "| sessions | workers | ok | client CPU % | per session % | server CPU % | RSS MB | per "
        "session MB (marginal) | answers on time | mic lag p99 ms | first audio p99/max ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        smaller = [p for p in runs if p.workers == r.workers and p.sessions < r.sessions]
        marginal = ""
        if smaller:
            prev = max(smaller, key=lambda p: p.sessions)
            marginal = f" ({(r.peak_rss_mb - prev.peak_rss_mb) / (r.sessions - prev.sessions):.2f})"
        lines.append(
            f"| {r.sessions} | {r.workers} | {r.ok}/{r.sessions} | {r.cpu_pct:.0f} | "
            f"{r.cpu_pct / r.sessions:.2f} | {100 * r.server_cpu_s / r.wall_s:.0f} | "
            f"{r.peak_rss_mb:.0f} | {r.peak_rss_mb / r.sessions:.2f}{marginal} | "
            f"{100 * r.on_time_share:.0f} % ({r.on_time}/{r.answers}) | {r.mic_lag_p99_ms:.0f} | "
            f"{'-' if r.latency_p99_ms is None else f'{r.latency_p99_ms:.0f}'} |"
        )
    return "\n".join(lines) + "\n"


def plot(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for workers in sorted({r.workers for r in runs}):
        rs = [r for r in runs if r.workers == workers]
        a.plot(
            [r.sessions for r in rs],
            [100 * r.on_time_share for r in rs],
            "o-",
            label=f"{workers} worker(s)",
        )
        b.plot(
            [r.sessions for r in rs],
            [r.cpu_pct / r.sessions for r in rs],
            "o-",
            label=f"{workers} worker(s)",
        )
    a.set_xlabel("concurrent sessions")
    a.set_ylabel("answers on time (%)")
    a.set_ylim(0, 105)
    b.set_xlabel("concurrent sessions")
    b.set_ylabel("client CPU per session (% of a core)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.sessions", description=__doc__.splitlines()[0]
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 200, 300])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seconds", type=float, default=24.0)
    p.add_argument(
        "--no-write", action="store_true", help="print only; write nothing in bench/results/"
    )
    p.add_argument("--serve", nargs=2, metavar=("PORT_FILE", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(Path(args.serve[0]), Path(args.serve[1])))
        return 0
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-sessions-") as tmp_name:
        tmp = Path(tmp_name)
        write_conversation(tmp / "conversation.wav", args.seconds)
        for k in args.sizes:
            for workers in args.workers:  # interleaved: each size with every worker count in turn
                run = run_once(k, workers, args.seconds, tmp)
                runs.append(run)
                print(report([run], args.seconds).splitlines()[-1], flush=True)
    text = report(runs, args.seconds)
    print(text)
    if args.no_write:
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sessions.md").write_text(text)
    figures = {
        "bench": "sessions",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load": list(os.getloadavg()),
        "seconds": args.seconds,
        "runs": [
            {**asdict(r), "cpu_pct": r.cpu_pct, "on_time_share": r.on_time_share} for r in runs
        ],
    }
    (RESULTS / "sessions.json").write_text(json.dumps(figures, indent=1) + "\n")
    plot(runs, RESULTS / "sessions.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
