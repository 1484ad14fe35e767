"""The batch runner (``python -m pipelines.batch``) against real WebSocket peers on 127.0.0.1.

The peer answers every user turn of every connection with a scripted spoken answer. Which
conversation it is talking to, it tells from the microphone audio: a conversation recorded loud
("bad") gets one answer and then a close 1008, as a policy violation would end it. Every run is a
real subprocess with real worker processes; the checks read what a user reads: exit code, the
printed table, the folders, ``summary.csv`` / ``summary.json`` / ``latency.png``, and the process
table afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import json
import signal
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.support.audio import write_wav
from tests.support.faulty_server import FaultyServer
from tests.support.replay_server import ReplayServer, ServerConn
from tests.support.scenarios import (
    Turn,
    handshake,
    noise,
    response_end,
    response_start,
    transcript_deltas,
    user_speaks,
)
from tests.support.script_run import API_KEY, ROOT, run_to_end, send_signal, speak

RATE = 24000
LOUD = 6000  # amplitude of a "bad" conversation's microphone
QUIET = 300
TURN_AUDIO_S = 0.6  # mic audio the peer waits for before each answer


def conversation_wav(path: Path, seconds: float, amplitude: int, seed: int) -> Path:
    return write_wav(path, noise(seconds, seed=seed, amplitude=amplitude))


class TurnServer:
    """Answers a turn after every ``TURN_AUDIO_S`` of microphone audio, up to ``turns`` turns;
    a typed turn (conversation.item.create + response.create) is answered at once."""

    def __init__(self, turns: int = 2) -> None:
        self.turns = turns
        self.closed_1008 = 0
        self.conns: list[ServerConn] = []

    async def close_codes(self, timeout: float = 3.0) -> list[int | None]:
        """The close code of every connection (waiting briefly for the closes to land)."""
        deadline = time.monotonic() + timeout
        while any(c.ws.close_code is None for c in self.conns) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return [c.ws.close_code for c in self.conns]

    async def __call__(self, conn: ServerConn) -> None:
        self.conns.append(conn)
        await handshake(conn, session_id=f"sess_B{id(conn) % 100000}")
        typed = asyncio.create_task(self._typed(conn))
        try:
            for n in range(1, self.turns + 1):
                if not await self._heard(conn, int(TURN_AUDIO_S * RATE * 2) * n):
                    return  # the client went away before speaking this much
                await self._answer(
                    conn, Turn(f"question {n}", f"answer number {n}.", noise(0.4, seed=n))
                )
                if n == 1 and self._loudness(conn) > LOUD / 2:
                    self.closed_1008 += 1
                    await conn.ws.close(1008, "policy violation")
                    return
            await conn.ws.wait_closed()
        finally:
            typed.cancel()

    @staticmethod
    async def _heard(conn: ServerConn, nbytes: int) -> bool:
        """Until the client appended ``nbytes`` of audio (True) or closed (False)."""
        audio = asyncio.create_task(conn.wait_audio(nbytes, timeout=60))
        closed = asyncio.create_task(conn.ws.wait_closed())
        await asyncio.wait([audio, closed], return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        if not audio.done():
            audio.cancel()
            return False
        return audio.exception() is None

    async def _typed(self, conn: ServerConn) -> None:
        n = 0
        while True:
            n += 1
            try:
                await conn.wait_for("response.create", count=n, timeout=3600)
            except AssertionError:  # the client closed: no more typed turns
                return
            await self._answer(
                conn, Turn("", f"typed answer {n}.", noise(0.3, seed=100 + n)), spoken=False
            )

    @staticmethod
    def _loudness(conn: ServerConn) -> int:
        appends = conn.record.of_type("input_audio_buffer.append")
        pcm = b"".join(base64.b64decode(e["audio"]) for e in appends[:5])
        return int(np.abs(np.frombuffer(pcm, dtype=np.int16)).max()) if pcm else 0

    @staticmethod
    async def _answer(conn: ServerConn, turn: Turn, spoken: bool = True) -> None:
        if spoken:
            await user_speaks(conn, turn)
        await response_start(conn, turn)
        await transcript_deltas(conn, turn)
        await conn.stream_audio(turn.response_id, turn.item_id, turn.audio, speed=4.0)
        await response_end(conn, turn)


async def run_batch(
    args: list[str], cwd: Path, *, timeout: float = 90.0, during=None
) -> tuple[int, str, str, float]:
    """Run ``python -m pipelines.batch args``; returns (exit code, stdout, stderr, seconds)."""
    run = await run_to_end("-m", "pipelines.batch", *args, cwd=cwd, timeout=timeout, during=during)
    return run.code, run.stdout, run.stderr, run.elapsed


def assert_no_worker_left(out_dir: Path, seen_pids: set[int] = frozenset()) -> None:
    summary = json.loads((out_dir / "summary.json").read_text())
    pids = {c["worker_pid"] for c in summary["conversations"] if c["worker_pid"]} | set(seen_pids)
    deadline = time.monotonic() + 3
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = {
            p
            for p in pids
            if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        }
        time.sleep(0.05)
    assert not alive, f"worker processes left behind: {alive}"


def rows(out_dir: Path) -> list[dict[str, str]]:
    with open(out_dir / "summary.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def model_flags(url: str) -> list[str]:
    return [
        "--endpoint",
        url,
        "--api-key",
        API_KEY,
        "--model",
        "gpt-realtime",
        "--idle-grace",
        "0.5",
    ]


async def test_a_batch_writes_every_folder_and_summary_and_names_the_failed_one(
    tmp_path: Path,
) -> None:
    convs = tmp_path / "questions"
    convs.mkdir()
    conversation_wav(convs / "alpha.wav", 2.0, QUIET, 1)
    conversation_wav(convs / "bravo.wav", 2.0, QUIET, 2)
    conversation_wav(convs / "charlie.wav", 2.0, LOUD, 3)  # its server closes 1008 after one answer
    (convs / "delta.txt").write_text("What time is it?\nAnd the date?\n", encoding="utf-8")
    (convs / "notes.md").write_text("not a conversation", encoding="utf-8")
    server = TurnServer(turns=2)
    async with ReplayServer(server) as peer:
        code, out, err, _ = await run_batch(
            [
                "questions",
                "--out",
                "results",
                "--workers",
                "2",
                "--per-worker",
                "2",
                *model_flags(peer.url),
            ],
            tmp_path,
        )
    assert code == 1, (out, err)
    assert server.closed_1008 == 1
    results = tmp_path / "results"
    failed = [line for line in out.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and failed[0].startswith("failed: charlie:") and "1008" in failed[0], (
        out
    )
    assert "Traceback" not in out + err
    for name in ("alpha", "bravo", "delta"):
        folder = results / name
        assert (
            len(list(folder.glob("session_*.log"))) == 1
            and len(list(folder.glob("events_*.jsonl"))) == 1
        )
        assert (folder / "voicelive.log").is_file() and (folder / "reply.wav").stat().st_size > 44
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        assert report["ok"] and report["failure"] is None and report["reconnects"] == []
        assert len(report["turns"]) == 2, report
        assert all(
            t["first_audio_latency_ms"] is not None and t["agent_text"] for t in report["turns"]
        ), report
        assert report["usage"], report
    delta = json.loads((results / "delta" / "report.json").read_text(encoding="utf-8"))
    assert [t["user_text"] for t in delta["turns"]] == ["What time is it?", "And the date?"]
    assert [t["input"] for t in delta["turns"]] == ["typed", "typed"]
    assert [t["agent_text"] for t in delta["turns"]] == ["typed answer 1.", "typed answer 2."]
    charlie = json.loads((results / "charlie" / "report.json").read_text(encoding="utf-8"))
    assert not charlie["ok"] and "1008" in charlie["failure"]
    csv_rows = rows(results)
    assert [(r["conversation"], r["turn"]) for r in csv_rows if r["ok"] == "True"] == [
        ("alpha", "1"),
        ("alpha", "2"),
        ("bravo", "1"),
        ("bravo", "2"),
        ("delta", "1"),
        ("delta", "2"),
    ]
    assert all(float(r["latency_ms"]) >= 0 for r in csv_rows if r["ok"] == "True")
    summary = json.loads((results / "summary.json").read_text(encoding="utf-8"))
    assert summary["totals"]["ok"] == 3 and summary["totals"]["failed"] == 1
    assert (results / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_no_worker_left(results)


async def test_bad_inputs_fail_before_any_connection(tmp_path: Path) -> None:
    conversation_wav(tmp_path / "ok.wav", 1.0, QUIET, 1)
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    (tmp_path / "not.wav").write_text("RIFF? no", encoding="utf-8")
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    cases = [
        (["missing.wav", "--out", "r"], "not found"),
        (["empty.txt", "--out", "r"], "no typed turns"),
        (["not.wav", "--out", "r"], "not.wav"),
        (["ok.wav", "--out", "afile"], "is a file"),
        (["ok.wav", "--out", "r", "--workers", "0"], "--workers"),
        (["ok.wav", "--out", "r", "--input-wav", "ok.wav"], "--input-wav"),
        (["ok.wav", "--out", "r", "--worker-memory-mb", "-5"], "--worker-memory-mb"),
    ]

    async def never(conn: ServerConn) -> None:  # pragma: no cover - must never be reached
        raise AssertionError("connected despite bad input")

    async with ReplayServer(never) as peer:
        for argv, expected in cases:
            code, out, err, _ = await run_batch([*argv, *model_flags(peer.url)], tmp_path)
            lines = [line for line in err.splitlines() if line.strip()]
            assert code == 2 and len(lines) == 1 and expected in lines[0], (argv, code, out, err)
        assert peer.attempts == 0
    assert not (tmp_path / "r").exists()


async def test_a_killed_worker_is_replaced_and_its_conversation_failed(tmp_path: Path) -> None:
    convs = tmp_path / "c"
    convs.mkdir()
    for n in range(4):
        conversation_wav(convs / f"conv{n}.wav", 2.5, QUIET, n)
    killed: list[int] = []

    async def kill_a_worker(proc: asyncio.subprocess.Process) -> None:
        while len(peer.connections) < 2:
            await asyncio.sleep(0.05)
        workers = [
            c
            for c in psutil.Process(proc.pid).children()
            if "spawn_main" in " ".join(c.cmdline())
            and "resource_tracker" not in " ".join(c.cmdline())
        ]
        assert len(workers) == 2, workers
        workers[0].kill()
        killed.append(workers[0].pid)

    async with ReplayServer(TurnServer(turns=1)) as peer:
        code, out, err, _ = await run_batch(
            ["c", "--out", "r", "--workers", "2", "--per-worker", "1", *model_flags(peer.url)],
            tmp_path,
            during=kill_a_worker,
        )
    assert code == 1, (out, err)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text(encoding="utf-8"))
    failed = [c for c in summary["conversations"] if not c["ok"]]
    assert (
        len(failed) == 1 and f"worker {killed[0]} was killed by SIGKILL" in failed[0]["failure"]
    ), summary
    assert summary["totals"]["ok"] == 3 and summary["workers_replaced"] == 1
    assert f"worker {killed[0]} was killed by SIGKILL" in out
    assert_no_worker_left(tmp_path / "r", set(killed))


async def test_connects_are_paced_across_workers(tmp_path: Path) -> None:
    """At most 2 connects in any 3 s window, whichever worker makes them (the CLI's window is
    a minute; the pool takes the window as a parameter so this runs in seconds)."""
    from pipelines.batch.jobs import make_jobs
    from pipelines.batch.pool import WorkerPool
    from pipelines.config import parse_config

    for n in range(4):
        conversation_wav(tmp_path / f"p{n}.wav", 1.0, QUIET, n)
    async with FaultyServer(TurnServer(turns=1)) as peer:
        config, _ = parse_config(model_flags(peer.url), env={}, dotenv_path=None)
        jobs = make_jobs(sorted(tmp_path.glob("p*.wav")), tmp_path / "out", config)
        pool = WorkerPool(jobs, workers=2, per_worker=2, connects_per_minute=2, window_s=3.0)
        results = await asyncio.wait_for(pool.run(), 60)
        attempts = list(peer.attempt_times)
    assert [r.ok for r in results] == [True] * 4, [r.reason for r in results]
    assert len(attempts) == 4
    for i in range(2, 4):
        assert attempts[i] - attempts[i - 2] >= 2.9, attempts


async def test_first_ctrl_c_finishes_the_running_ones_and_starts_nothing_new(
    tmp_path: Path,
) -> None:
    convs = tmp_path / "c"
    convs.mkdir()
    for n in range(4):
        conversation_wav(convs / f"conv{n}.wav", 2.0, QUIET, n)

    async def interrupt_once(proc: asyncio.subprocess.Process) -> None:
        while len(peer.connections) < 2:
            await asyncio.sleep(0.05)
        send_signal(proc, signal.SIGINT)

    server = TurnServer(turns=1)
    async with ReplayServer(server) as peer:
        code, out, err, _ = await run_batch(
            ["c", "--out", "r", "--workers", "1", "--per-worker", "2", *model_flags(peer.url)],
            tmp_path,
            during=interrupt_once,
        )
        closes = await server.close_codes()
    assert code == 130, (out, err)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text(encoding="utf-8"))
    by_name = {c["conversation"]: c for c in summary["conversations"]}
    assert by_name["conv0"]["ok"] and by_name["conv1"]["ok"], summary
    assert (
        "not started" in by_name["conv2"]["failure"]
        and "not started" in by_name["conv3"]["failure"]
    )
    assert len(peer.connections) == 2 and closes == [1000, 1000]
    assert_no_worker_left(tmp_path / "r")


async def test_second_ctrl_c_cancels_the_running_ones_with_complete_logs(tmp_path: Path) -> None:
    convs = tmp_path / "c"
    convs.mkdir()
    for n in range(2):
        conversation_wav(convs / f"long{n}.wav", 30.0, QUIET, n)

    async def interrupt_twice(proc: asyncio.subprocess.Process) -> None:
        while len(peer.connections) < 2 or any(len(c.sent) < 2 for c in peer.connections):
            await asyncio.sleep(0.05)
        send_signal(proc, signal.SIGINT)
        await asyncio.sleep(0.3)
        send_signal(proc, signal.SIGINT)

    server = TurnServer(turns=1)
    async with ReplayServer(server) as peer:
        code, out, err, seconds = await run_batch(
            ["c", "--out", "r", "--workers", "1", "--per-worker", "2", *model_flags(peer.url)],
            tmp_path,
            during=interrupt_twice,
        )
        closes = await server.close_codes()
    assert code == 130, (out, err)
    assert seconds < 25, f"cancelling took the whole conversation ({seconds:.1f} s)"
    assert closes == [1000, 1000]
    for n in range(2):
        folder = tmp_path / "r" / f"long{n}"
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        assert not report["ok"] and "cancel" in report["failure"].lower(), report
        (log,) = folder.glob("session_*.log")
        assert any(
            line.startswith("SessionID: ") for line in log.read_text(encoding="utf-8").splitlines()
        )
        (events,) = folder.glob("events_*.jsonl")
        for line in events.read_text(encoding="utf-8").splitlines():
            json.loads(line)
    assert "Traceback" not in out + err
    assert_no_worker_left(tmp_path / "r")


@pytest.mark.parametrize(
    "per_minute,window,expected", [(2, 60.0, [0, 0, 60.0]), (1, 10.0, [0, 10.0, 10.0])]
)
def test_connect_pacer_is_a_sliding_window(
    per_minute: int, window: float, expected: list[float]
) -> None:
    from processors.voicelive.reconnect import ConnectRate

    pacer = ConnectRate(per_minute, window)
    got = []
    now = 100.0
    for _ in range(3):
        wait = pacer.wait(now)
        got.append(round(wait, 3))
        now += wait
        pacer.record(now)
    assert got == expected


def test_a_reserved_connect_counts_when_it_really_happens() -> None:
    from processors.voicelive.reconnect import ConnectRate

    rate = ConnectRate(1, 10.0)
    rate.record(100.0)  # reserved at dispatch
    assert rate.wait(105.0) == pytest.approx(5.0)
    rate.retime(100.0, 104.0)  # the conversation connected at 104
    assert rate.wait(105.0) == pytest.approx(9.0)


assert ROOT.is_dir()


async def test_a_batch_against_the_embedded_server(tmp_path: Path) -> None:
    """``--local``: one embedded server process serves every worker's sessions; a spoken and a
    typed question are both answered, and no process is left behind."""
    convs = tmp_path / "q"
    convs.mkdir()
    await speak("What is the capital of France?", convs / "spoken.wav", pad_ms=1000)
    (convs / "typed.txt").write_text("What is the capital of France?\n", encoding="utf-8")
    code, out, err, _ = await run_batch(
        ["q", "--out", "r", "--local", "--workers", "2"], tmp_path, timeout=120
    )
    assert code == 0, (out, err)
    for name in ("spoken", "typed"):
        report = json.loads((tmp_path / "r" / name / "report.json").read_text(encoding="utf-8"))
        (turn,) = report["turns"]
        assert "Paris" in (turn["agent_text"] or ""), report
        assert turn["first_audio_latency_ms"] is not None
    assert_no_worker_left(tmp_path / "r")
