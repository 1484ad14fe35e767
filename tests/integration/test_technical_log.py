"""The technical log as shipped: nothing per frame by default, each session its own lines, the
previous run kept, rotation, and file names that never collide.

Every session is real: the default script (or a composed program) as a subprocess against
WebSocket peers on 127.0.0.1 whose sessions carry distinctive ids, so a line can be traced to the
session it belongs to.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from processors.logfiles import LineWriter
from processors.session_log import session_timestamp
from tests.support.audio import write_wav
from tests.support.fault_scenarios import answer, default_turns
from tests.support.faulty_server import FaultyServer
from tests.support.replay_server import ServerConn
from tests.support.scenarios import RATE, handshake, noise
from tests.support.script_run import (
    ScriptRun,
    check_logs_private,
    check_no_crash,
    run_script,
    run_to_end,
)


def conversation(session_id: str):  # type: ignore[no-untyped-def]
    """Handshake as ``session_id``, then one answered turn (a response with audio and words)."""

    async def script(conn: ServerConn) -> None:
        await handshake(conn, session_id=session_id)
        await conn.wait_audio(RATE * 2 // 5)
        await answer(conn, default_turns()[0])

    return script


FRAME_LINE = re.compile(r":websockets\.client:DEBUG:[<>] (TEXT|BINARY|PING|PONG)")
SUMMARY = re.compile(
    r":INFO:Response \S+ completed: (\d+) audio frames \(([\d.]+) s\), (\d+) transcript deltas, "
    r"first audio \d+ ms"
)


async def scripted_run(tmp: Path, session_id: str, *extra: str) -> ScriptRun:
    async with FaultyServer(conversation(session_id)) as server:
        return await run_script(server.url, tmp, input_s=2.0, timeout=40, extra=extra)


async def test_by_default_the_technical_log_has_no_line_per_frame(tmp_path: Path) -> None:
    """Default: connections, session events and one summary line per response, no websockets
    frame lines and no per-event lines. ``--verbose`` adds a line per event, ``--debug`` the
    frames too."""
    plain, verbose, debug = await asyncio.gather(
        scripted_run(tmp_path / "plain", "sess_Plain"),
        scripted_run(tmp_path / "verbose", "sess_Verbose", "--verbose"),
        scripted_run(tmp_path / "debug", "sess_Debug", "--debug"),
    )
    for run in (plain, verbose, debug):
        assert run.code == 0, run.describe()
        check_no_crash(run)
        check_logs_private(run)
    log = plain.tech_log()
    assert not FRAME_LINE.search(log), next(
        line for line in log.splitlines() if FRAME_LINE.search(line)
    )
    assert ":DEBUG:" not in log, next(line for line in log.splitlines() if ":DEBUG:" in line)
    assert "Connecting to ws://127.0.0.1" in log and "Session created: sess_Plain" in log
    summaries = SUMMARY.findall(log)
    assert len(summaries) == 1, log
    frames, seconds, deltas = summaries[0]
    turn = default_turns()[0]
    assert (
        int(frames) > 0
        and abs(float(seconds) - len(turn.audio) / 2 / RATE) < 0.05
        and int(deltas) > 0
    )
    assert "Received event: response.audio_transcript.delta" in verbose.tech_log()
    assert not FRAME_LINE.search(verbose.tech_log())
    assert FRAME_LINE.search(debug.tech_log()), "--debug did not log websockets' frames"


async def test_the_previous_run_is_kept_and_file_names_never_collide(tmp_path: Path) -> None:
    """Two runs started together into one --log-dir, then a third: voicelive.log holds all three
    sessions (appended, never truncated); each run has its own session_*.log and events_*.jsonl
    (quickstart prefixes, sub-second time and a short id), each whole."""
    first = await asyncio.gather(
        scripted_run(tmp_path / "a", "sess_First1", "--log-dir", str(tmp_path / "shared")),
        scripted_run(tmp_path / "b", "sess_First2", "--log-dir", str(tmp_path / "shared")),
    )
    third = await scripted_run(tmp_path / "c", "sess_Third", "--log-dir", str(tmp_path / "shared"))
    for run in (*first, third):
        assert run.code == 0, run.describe()
    shared = tmp_path / "shared"
    log = (shared / "voicelive.log").read_text(encoding="utf-8")
    for session_id in ("sess_First1", "sess_First2", "sess_Third"):
        assert f"Session created: {session_id}" in log, (
            f"{session_id} is missing from voicelive.log"
        )
    session_logs = sorted(shared.glob("session_*.log"))
    events = sorted(shared.glob("events_*.jsonl"))
    assert len(session_logs) == 3 and len(events) == 3, sorted(p.name for p in shared.iterdir())
    ids = set()
    for path in session_logs:
        assert re.fullmatch(
            r"session_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{3}_[0-9a-f]{6}\.log", path.name
        ), path.name
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines[0] == "Agent Session Log:" and lines.count("Agent Session Log:") == 1, lines
        (session_line,) = [line for line in lines if line.startswith("SessionID: ")]
        ids.add(session_line)
    assert len(ids) == 3
    for path in events:
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        created = {
            r["event"]["session"]["id"]
            for r in records
            if r["event"].get("type") == "session.created"
        }
        assert len(created) == 1, f"{path.name} mixes sessions {created}"


def test_session_file_names_started_in_the_same_second_differ() -> None:
    stamps = {session_timestamp() for _ in range(50)}
    assert len(stamps) == 50


TWO_SESSIONS = """
import asyncio, sys, threading
from pathlib import Path
from pipelines.agent import build_agent_pipeline
from pipelines.config import parse_config
from processors.logsetup import configure_console
from processors.voicelive.endpoint import Endpoint
from transports.wav import WavInputTransport, WavOutputTransport

async def one(url, folder):
    config, _ = parse_config(["--endpoint", url, "--model", "gpt-realtime",
                              "--api-key", "K-two-sessions-1234",
                              "--log-dir", folder, "--input-wav", sys.argv[3]], env={})
    app = build_agent_pipeline(config, input=WavInputTransport(config.input_wav),
                               output=WavOutputTransport(f"{folder}.wav"))
    return await app.run(idle_grace_s=0.5)

async def count_log_threads(seen):
    while True:
        seen.append(sum(t.name.startswith("log-") for t in threading.enumerate()))
        await asyncio.sleep(0.1)

async def main():
    seen = []
    sampler = asyncio.create_task(count_log_threads(seen))
    codes = await asyncio.gather(one(sys.argv[1], "logs_a"), one(sys.argv[2], "logs_b"))
    sampler.cancel()
    print(f"log threads at most: {max(seen)}")
    sys.exit(max(codes))

configure_console()
asyncio.run(main())
"""


async def test_two_sessions_in_one_process_each_log_only_their_own_lines(tmp_path: Path) -> None:
    """Two sessions side by side in one process (as the batch runner runs them), each with its
    own --log-dir: each voicelive.log has its own session's connection and session lines and
    none of the other's; all their log files are written by one thread (six before)."""
    write_wav(tmp_path / "in.wav", noise(2.0, seed=3, amplitude=300))
    (tmp_path / "two.py").write_text(TWO_SESSIONS, encoding="utf-8")
    async with (
        FaultyServer(conversation("sess_Alpha")) as alpha,
        FaultyServer(conversation("sess_Beta")) as beta,
    ):
        ports = {"a": alpha.port, "b": beta.port}
        run = await run_to_end(
            "two.py", alpha.url, beta.url, str(tmp_path / "in.wav"), cwd=tmp_path, timeout=60
        )
    assert run.code == 0, (run.stdout[-2000:], run.stderr[-2000:])
    assert "log threads at most: 1" in run.stdout, run.stdout[-500:]
    logs = {
        name: (tmp_path / f"logs_{name}" / "voicelive.log").read_text(encoding="utf-8")
        for name in ("a", "b")
    }
    mine = {"a": ("sess_Alpha", ports["a"]), "b": ("sess_Beta", ports["b"])}
    for name, log in logs.items():
        other = "b" if name == "a" else "a"
        own_id, own_port = mine[name]
        other_id, other_port = mine[other]
        assert f"Session created: {own_id}" in log and f"127.0.0.1:{own_port}" in log, log[-2000:]
        leaked = [
            line
            for line in log.splitlines()
            if other_id in line or f"127.0.0.1:{other_port}" in line
        ]
        assert not leaked, (
            f"logs_{name}/voicelive.log holds the other session's lines: {leaked[:3]}"
        )
        assert len(SUMMARY.findall(log)) == 1, f"logs_{name}: one response, one summary line"


def test_the_technical_log_is_rotated_and_rotated_files_stay_private(tmp_path: Path) -> None:
    """Past ``max_bytes`` the file moves to ``.1`` (and ``.1`` to ``.2`` ...), the oldest beyond
    ``backups`` is dropped; every file is 0600 and every line is whole."""
    path = tmp_path / "logs" / "voicelive.log"
    writer = LineWriter(path, max_bytes=1000, backups=3)
    for n in range(200):
        writer.write(f"line {n:04d} " + "x" * 40)
    writer.close()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["voicelive.log", "voicelive.log.1", "voicelive.log.2", "voicelive.log.3"], (
        files
    )
    kept = []
    for name in ("voicelive.log.3", "voicelive.log.2", "voicelive.log.1", "voicelive.log"):
        p = path.parent / name
        assert p.stat().st_mode & 0o777 == 0o600 and p.stat().st_size <= 1000
        kept += p.read_text(encoding="utf-8").splitlines()
    numbers = [int(line.split()[1]) for line in kept]
    assert numbers == list(range(200 - len(numbers), 200)), (
        "lines were lost or reordered across rotations"
    )
    assert all(line.endswith("x" * 40) for line in kept)
