"""Command line of the local Voice Live server:
``python -m localserver --host 127.0.0.1 --port 0 [--api-key KEY]`` prints the URL it serves
(one line) and runs until SIGINT/SIGTERM, then shuts down cleanly. ``--help`` lists the agents
and the phrases the default one understands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from localserver.brain import agents_help
from localserver.responder import Pacing
from localserver.server import LocalServer
from processors.console import install_last_resort, say
from processors.redaction import add_secret


class RedactedStderr(logging.Handler):
    """The server's log lines on stderr, through the project's one redacted way out."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record as ``LEVEL:logger:message`` on stderr, secrets redacted."""
        try:
            say(f"{record.levelname}:{record.name}:{self.format(record)}", err=True)
        except Exception:
            self.handleError(record)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The CLI options."""
    parser = argparse.ArgumentParser(
        prog="python -m localserver",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A Voice-Live-compatible server on this machine: offline VAD, speech\n"
        "recognition and synthesis, and deterministic agents instead of a model. It prints\n"
        "the URL it serves and runs until Ctrl-C or SIGTERM. Talk to it with\n"
        "  python -m pipelines.agent --endpoint <URL> --agent-id <agent> --project-name any\n"
        "or let the agent script start one: python -m pipelines.agent --local [--agent-id echo]",
        epilog="agents:\n" + agents_help(),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (0 = pick a free one)")
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any key)")
    parser.add_argument(
        "--lead-ms",
        type=int,
        default=Pacing.lead_ms,
        help="how far response audio may run ahead of real time (ms)",
    )
    parser.add_argument(
        "--pace",
        type=float,
        default=Pacing.pace,
        help="speed of response audio after the lead, x real time (0 = unpaced)",
    )
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Run the server until a termination signal."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pacing = Pacing(lead_ms=args.lead_ms, pace=args.pace)
    async with LocalServer(args.host, args.port, api_key=args.api_key, pacing=pacing) as server:
        say(f"Voice Live local server listening on {server.url}")
        await stop.wait()
    say("Voice Live local server stopped", err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point (also the ``voicelive-localserver`` script)."""
    args = parse_args(argv)
    add_secret(args.api_key)
    install_last_resort()
    logging.basicConfig(level=args.log_level.upper(), handlers=[RedactedStderr()])
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
