"""The default script, as a user runs it, against a real WebSocket peer playing a recorded turn
and then a barge-in: connection contract, session log, the speaker's timeline, and no secrets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.audio import RATE, contains_any_chunk, find, matching_run, read_wav, write_wav
from tests.support.replay_server import ReplayServer
from tests.support.scenarios import BargeInScenario, barge_in_scenario, noise
from tests.support.script_run import io_flags, run_to_end
from tests.support.sdk_check import validate_event

API_KEY = "K-apikey-7f3c9e1d5b"
ACCESS_TOKEN = "T-agenttoken-a94b2c8e6f"


async def run_script(
    env: dict[str, str],
    tmp: Path,
    server: ReplayServer,
    *extra: str,
    input_s: float = 5.0,
) -> tuple[int, str, str]:
    in_wav = write_wav(tmp / "in.wav", noise(input_s, seed=99, amplitude=300))
    run = await run_to_end(
        "-m",
        "pipelines.agent",
        "--endpoint",
        server.url,
        "--api-version",
        "2025-05-01-preview",
        "--api-key",
        API_KEY,
        "--agent-id",
        "A",
        "--project-name",
        "P",
        "--agent-access-token",
        ACCESS_TOKEN,
        *io_flags(tmp, in_wav),
        *extra,
        cwd=tmp,
        env=env,
        timeout=60,
    )
    return run.code, run.stdout, run.stderr


async def run_conversation(
    env: dict[str, str], tmp: Path, scenario: BargeInScenario
) -> tuple[Any, str, str]:
    """Run the script against ``scenario`` to its end: exit 0, one connection, the server's
    whole script played."""
    async with ReplayServer(scenario) as server:
        code, out, err = await run_script(env, tmp, server)
    assert not server.script_errors, server.script_errors
    assert code == 0, f"exit {code}\nstdout:\n{out}\nstderr:\n{err}"
    (conn,) = server.connections
    assert "script_done" in conn.marks, "the client ended before the conversation was over"
    return conn, out, err


@pytest.fixture
def scenario() -> BargeInScenario:
    return barge_in_scenario()


@pytest.mark.e2e
@pytest.mark.parametrize(
    "transcript_done_on_cancel", [False, True], ids=["no-done-after-cancel", "done-after-cancel"]
)
async def test_turn_then_barge_in(
    script_env: dict[str, str], tmp_path: Path, transcript_done_on_cancel: bool
) -> None:
    scenario = barge_in_scenario(transcript_done_on_cancel=transcript_done_on_cancel)
    conn, out, err = await run_conversation(script_env, tmp_path, scenario)
    marks = conn.marks

    # Connection contract.
    assert conn.path == "/voice-live/realtime"
    assert conn.query == {
        "api-version": "2025-05-01-preview",
        "agent-project-name": "P",
        "agent-id": "A",
        "agent-access-token": ACCESS_TOKEN,
    }
    assert conn.headers["api-key"] == API_KEY
    assert conn.headers["x-ms-client-request-id"]
    assert conn.close_code == 1000

    # Every client event validates against the official SDK models.
    for _, event in conn.client_events:
        validate_event(event, "client")

    # session.update first; audio only after session.updated.
    kinds = [e["type"] for _, e in conn.client_events]
    assert kinds[0] == "session.update"
    updated_at = next(t for t, e in conn.sent if e["type"] == "session.updated")
    first_append = next(
        t for t, e in conn.client_events if e["type"] == "input_audio_buffer.append"
    )
    assert first_append >= updated_at

    # The speaker's timeline.
    wav, rate = read_wav(tmp_path / "out.wav")
    assert rate == RATE
    for turn in (scenario.turn1, scenario.turn3):
        start = find(wav, turn.audio)
        assert start >= 0, "an uninterrupted response is missing from the output"
        assert matching_run(wav, start, turn.audio) == len(turn.audio) // 2, (
            "an uninterrupted response lost samples"
        )
    start2 = find(wav, scenario.turn2.audio)
    assert start2 >= 0
    played2 = matching_run(wav, start2, scenario.turn2.audio)
    assert np.all(wav[start2 + played2 : start2 + played2 + RATE // 10] == 0), (
        "audio follows the cut"
    )
    heard_ms = played2 * 1000 / RATE
    expected_ms = (marks["barge_in"] - marks["turn2_first_delta"]) * 1000
    # Both ends are wall-clock marks of two processes; the WAV speaker's timeline moves one tick
    # (40 ms) at a time, so where the cut lands is known to a tick, not better.
    assert abs(heard_ms - expected_ms) <= 40, (
        f"played {heard_ms:.1f} ms of the interrupted answer, barge-in came at {expected_ms:.1f} ms"
    )
    assert not contains_any_chunk(wav, scenario.late_audio), (
        "a late delta of the interrupted response was played"
    )

    # Truncation at what was heard, never beyond what was received.
    (trunc,) = conn.of_type("conversation.item.truncate")
    assert trunc["item_id"] == scenario.turn2.item_id and trunc["content_index"] == 0
    assert abs(trunc["audio_end_ms"] - heard_ms) <= 20
    assert trunc["audio_end_ms"] <= scenario.cut_after_s * 1000 + scenario.late_chunks * 100

    # The session log, line for line in the quickstart's format.
    (session_log,) = (tmp_path / "logs").glob("session_*.log")
    lines = session_log.read_text(encoding="utf-8").splitlines()
    assert lines[:3] == ["Agent Session Log:", "Using agent: A", "Project name: P"]
    assert lines[3].startswith('Session Config: {"type": "session.update"')
    assert lines[4] == "SessionID: sess_Replay1"
    assert lines[5:] == [
        f"User Input: {scenario.turn1.user_text}",
        f"Agent Audio Response: {scenario.turn1.agent_text}",
        f"User Input: {scenario.turn2.user_text}",
        f"Agent Audio Response: {scenario.turn2.agent_text}",
        f"User Input: {scenario.turn3.user_text}",
        f"Agent Audio Response: {scenario.turn3.agent_text}",
    ]
    (events,) = (tmp_path / "logs").glob("events_*.jsonl")
    assert events.stat().st_size > 0

    # No secret anywhere.
    for path in (tmp_path / "logs").iterdir():
        text = path.read_text(encoding="utf-8", errors="replace")
        assert API_KEY not in text and ACCESS_TOKEN not in text, f"secret in {path.name}"
        assert path.stat().st_mode & 0o077 == 0, f"{path.name} is readable by others"
    assert API_KEY not in out + err and ACCESS_TOKEN not in out + err
    tech_log = (tmp_path / "logs" / "voicelive.log").read_text(encoding="utf-8")
    assert re.search(
        r"Connecting to ws://127\.0\.0\.1:\d+/voice-live/realtime \(x-ms-client-request-id ",
        tech_log,
    )


@pytest.mark.e2e
async def test_server_silent_after_the_barge_in_still_ends_by_itself(
    script_env: dict[str, str], tmp_path: Path
) -> None:
    """The server plays a turn and a barge-in, then says nothing more (no ``speech_stopped``, no
    ``response.done`` for the cut answer) and keeps the socket open. Once the input WAV is over
    the script must not wait for events that never come: it ends with exit 0, the interrupted
    answer's words heard so far are in the session log, and the socket closes with 1000."""
    scenario = barge_in_scenario(silent_after_barge_in=True)
    conn, _, _ = await run_conversation(script_env, tmp_path, scenario)
    assert conn.close_code == 1000
    wav, _ = read_wav(tmp_path / "out.wav")
    start = find(wav, scenario.turn1.audio)
    assert (
        start >= 0
        and matching_run(wav, start, scenario.turn1.audio) == len(scenario.turn1.audio) // 2
    )
    assert not contains_any_chunk(wav, scenario.late_audio), (
        "a late delta of the interrupted response was played"
    )
    (session_log,) = (tmp_path / "logs").glob("session_*.log")
    lines = session_log.read_text(encoding="utf-8").splitlines()
    assert lines[5:] == [
        f"User Input: {scenario.turn1.user_text}",
        f"Agent Audio Response: {scenario.turn1.agent_text}",
        f"User Input: {scenario.turn2.user_text}",
        f"Agent Audio Response: {scenario.turn2.agent_text}",
    ], lines
