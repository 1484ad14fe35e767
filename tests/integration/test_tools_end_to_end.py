"""Tools end to end: ``SessionConfig.tools`` + ``register_function`` against the recorded tool
round, and ``--tools`` modules against the embedded server, whose model calls them. A raising or
slow tool is answered with an error the model reads, and the session goes on."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pipecat.frames.frames import Frame, InputTextRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from localserver.responder import Pacing
from localserver.server import LocalServer
from pipelines.agent import AgentPipeline, build_agent_pipeline
from pipelines.config import parse_config
from processors.frames import AgentWords
from processors.voicelive.endpoint import Endpoint
from tests.support.audio import write_wav
from tests.support.replay_server import ReplayServer, ServerConn
from tests.support.traces import TRACE_DIR, load_trace
from transports.wav import WavInputTransport, WavOutputTransport

TRACE = TRACE_DIR / "test_tool_call_round.yaml"


def silence(tmp: Path, seconds: float = 0.5) -> Path:
    return write_wav(tmp / "silence.wav", bytes(2 * int(24000 * seconds)))


def session_log(tmp: Path) -> list[str]:
    (path,) = (tmp / "logs").glob("session_*.log")
    return path.read_text(encoding="utf-8").splitlines()


def conversation(lines: list[str]) -> list[str]:
    """The user, tool and agent lines of a session log."""
    return [
        x
        for x in lines
        if x.startswith(
            (
                "User Input:",
                "Tool Call:",
                "Tool Result:",
                "Agent Audio Response:",
                "Agent Text Response:",
            )
        )
    ]


RECORDED = load_trace(TRACE)
RECEIVED = [i.data for i in RECORDED if i.direction == "received"]
DECLARED = next(i.data for i in RECORDED if i.data["type"] == "session.update")["session"]["tools"]
DONE = next(k for k, e in enumerate(RECEIVED) if e["type"] == "response.done")
Handler = Callable[[dict[str, Any] | str], Awaitable[str]]


async def replay_tool_round(
    tmp: Path, make_handler: Callable[[AgentPipeline], Handler], *, done_first: bool
) -> list[dict[str, Any]]:
    """The service side of the recorded round against the default pipeline, whose service has
    ``get_weather`` declared and registered. The server sends the call, then waits for the
    output (``done_first``: sends ``response.done`` first); returns the items the client sent."""
    items: list[dict[str, Any]] = []

    async def script(conn: ServerConn) -> None:
        await conn.send(RECEIVED[0])  # session.created
        assert (await conn.wait_for("session.update"))["session"]["tools"] == DECLARED
        await conn.send(RECEIVED[1])  # session.updated
        await conn.wait_for("response.create")
        for event in RECEIVED[2 : DONE + 1 if done_first else DONE]:  # output_item.added ... done
            await conn.send(event)
        items.append((await conn.wait_for("conversation.item.create", count=2, timeout=15))["item"])
        if not done_first:
            await conn.send(RECEIVED[DONE])  # only now may the client ask for the answer
        await conn.wait_for("response.create", count=2)
        for event in RECEIVED[DONE + 1 :]:
            await conn.send(event)

    async with ReplayServer(script) as server:
        argv = ["--endpoint", server.url, "--api-key", "k", "--model", "gpt-realtime"]
        config, _ = parse_config([*argv, "--log-dir", str(tmp / "logs")], env={}, dotenv_path=None)
        config.session_config.tools = DECLARED
        app = build_agent_pipeline(
            config,
            input=WavInputTransport(silence(tmp)),
            output=WavOutputTransport(tmp / "out.wav"),
        )
        app.service.register_function("get_weather", make_handler(app))
        await app.worker.queue_frame(InputTextRawFrame("What is the weather in London?"))
        assert await app.run(idle_grace_s=0.3) == 0
    assert not server.script_errors
    return items


async def test_the_recorded_tool_round_runs_a_registered_function(tmp_path: Path) -> None:
    """The client calls the handler with the model's arguments, sends its output, then asks for
    the answer once the call's response is done."""
    calls: list[Any] = []

    async def get_weather(arguments: dict[str, Any] | str) -> str:
        calls.append(arguments)
        return f"It is foggy and 12 degrees in {json.loads(str(arguments))['city']}."

    items = await replay_tool_round(tmp_path, lambda app: get_weather, done_first=False)
    done = next(e for e in RECEIVED if e["type"] == "response.function_call_arguments.done")
    assert calls == [done["arguments"]]
    answer = "It is foggy and 12 degrees in London."
    assert items == [{"type": "function_call_output", "call_id": done["call_id"], "output": answer}]
    lines = session_log(tmp_path)
    assert 'Tool Call: get_weather({"city": "London"})' in lines
    assert f"Tool Result: get_weather: {answer}" in lines
    text_done = next(e for e in RECEIVED if e["type"] == "response.text.done")
    assert lines[-1] == f"Agent Text Response: {text_done['text']}"


async def test_server_events_keep_flowing_while_a_tool_runs(tmp_path: Path) -> None:
    """The tool waits until the client has handled the response.done sent after the call. It
    ran inside the event receive loop before, so nothing arrived while a tool worked (no audio,
    no barge-in): this handler saw response.done only after giving up."""

    def waiting_for_done(app: AgentPipeline) -> Handler:
        async def get_weather(arguments: dict[str, Any] | str) -> str:
            for _ in range(100):  # up to 5 s
                if app.service.session.active_response is None:
                    return "saw response.done while working"
                await asyncio.sleep(0.05)
            return "events were held up while the tool ran"

        return get_weather

    items = await replay_tool_round(tmp_path, waiting_for_done, done_first=True)
    assert [item["output"] for item in items] == ["saw response.done while working"]


class AskAfterEachAnswer(FrameProcessor):
    """Types the next question once the agent has answered the previous one."""

    def __init__(self, questions: list[str]) -> None:
        super().__init__()
        self.questions = list(questions)
        self.app: AgentPipeline | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, AgentWords) and self.questions and self.app is not None:
            await self.app.worker.queue_frame(InputTextRawFrame(self.questions.pop(0)))


async def converse(tmp: Path, tools_source: str, questions: list[str], *extra: str) -> list[str]:
    """Type ``questions`` one after the other to the embedded server's model, with the tools of
    ``tools_source``; return the session log."""
    (tmp / "my_tools.py").write_text(textwrap.dedent(tools_source), encoding="utf-8")

    argv = [
        "--local",
        "--model",
        "local",
        "--tools",
        str(tmp / "my_tools.py"),
        "--log-dir",
        str(tmp / "logs"),
        *extra,
    ]
    config, _ = parse_config(argv, env={}, dotenv_path=None)
    asker = AskAfterEachAnswer(questions[1:])
    async with LocalServer("127.0.0.1", 0, pacing=Pacing(pace=0)) as server:
        app = build_agent_pipeline(
            config,
            input=WavInputTransport(silence(tmp)),
            output=WavOutputTransport(tmp / "out.wav"),
            processors=[asker],
            endpoint=Endpoint.parse(server.url),
        )
        asker.app = app
        await app.worker.queue_frame(InputTextRawFrame(questions[0]))
        assert await app.run(idle_grace_s=0.5) == 0
    return session_log(tmp)


TOOLS = """
    import asyncio, time

    def get_weather(city: str) -> str:
        \"\"\"Weather for a city.\"\"\"
        if city == "London":
            raise LookupError("the weather service is down")
        return f"sunny in {city}"

    async def get_time() -> str:
        \"\"\"The time.\"\"\"
        await asyncio.sleep(60)
        return "never"

    def get_date() -> str:
        \"\"\"The date (blocks far too long).\"\"\"
        time.sleep(60)
        return "never"
"""


async def test_a_raising_tool_gives_the_model_an_error_and_the_session_goes_on(
    tmp_path: Path,
) -> None:
    lines = await converse(
        tmp_path, TOOLS, ["What is the weather in London?", "What is the weather in Paris?"]
    )
    error = "get_weather failed: LookupError: the weather service is down"
    assert conversation(lines) == [
        "User Input: What is the weather in London?",
        'Tool Call: get_weather({"city": "London"})',
        f'Tool Result: get_weather: {{"error": "{error}"}}',
        f"Agent Audio Response: Sorry, the tool failed: {error}",
        "User Input: What is the weather in Paris?",
        'Tool Call: get_weather({"city": "Paris"})',
        "Tool Result: get_weather: sunny in Paris",
        "Agent Audio Response: The tool returned: sunny in Paris",
    ]


async def test_slow_tools_are_answered_with_an_error_at_the_bound(tmp_path: Path) -> None:
    """An async tool is cancelled, a blocking one left behind in its thread; both within 0.5 s."""
    lines = await converse(
        tmp_path, TOOLS, ["What time is it?", "What is the date today?"], "--tool-timeout", "0.5"
    )
    assert conversation(lines) == [
        "User Input: What time is it?",
        "Tool Call: get_time({})",
        'Tool Result: get_time: {"error": "get_time did not answer within 0.5 s"}',
        "Agent Audio Response: Sorry, the tool failed: get_time did not answer within 0.5 s",
        "User Input: What is the date today?",
        "Tool Call: get_date({})",
        'Tool Result: get_date: {"error": "get_date did not answer within 0.5 s"}',
        "Agent Audio Response: Sorry, the tool failed: get_date did not answer within 0.5 s",
    ]
