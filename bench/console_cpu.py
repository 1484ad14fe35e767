"""CPU of a listening session with and without the live view, side by side in one run.

``python -m bench.console_cpu [--seconds 15] [--rounds 2]`` starts a private PulseAudio
(tests/audio_rig), then runs the default script ``--local`` on its microphone and speaker in a
real terminal (tmux, so stdout is a TTY) alternately with ``--plain`` and with the live view.
Once the session listens, it measures the script process's CPU time (all its threads: pipeline,
PortAudio callbacks, the view's timer; the embedded server runs in its own process) over
``--seconds`` of silence, then quits with ``q``. Writes ``bench/results/console_cpu.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

import psutil

from tests.audio_rig.pulse import PulseRig
from tests.support.script_run import script_env
from tests.support.tmux import Terminal

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "console_cpu.md"


def _script_process(term: Terminal) -> psutil.Process:
    shell = psutil.Process(
        int(term._tmux("display-message", "-p", "-t", "t", "#{pane_pid}").strip())
    )
    for child in shell.children(recursive=True):
        if "pipelines.agent" in " ".join(child.cmdline()):
            return child
    raise RuntimeError("the script process was not found")


async def listening_cpu(rig: PulseRig, plain: bool, seconds: float, tmp: Path) -> float:
    """% of one core the script uses while it listens to silence."""
    argv = [sys.executable, "-m", "pipelines.agent", "--local", "--log-dir", str(tmp / "logs")] + (
        ["--plain"] if plain else []
    )
    term = Terminal(argv, cwd=ROOT, env={**script_env(), **rig.env})
    try:
        await term.wait_for(r"Session updated" if plain else r"● listening", 60)
        proc = _script_process(term)
        await asyncio.sleep(1.0)  # settle after start-up
        c0, t0 = sum(proc.cpu_times()[:2]), asyncio.get_running_loop().time()
        await asyncio.sleep(seconds)
        c1, t1 = sum(proc.cpu_times()[:2]), asyncio.get_running_loop().time()
        term.type("q")
        await term.exit_code()
        return 100.0 * (c1 - c0) / (t1 - t0)
    finally:
        term.close()


async def main(seconds: float, rounds: int, write: bool = True) -> None:
    import tempfile

    results: dict[str, list[float]] = {"plain lines (--plain)": [], "live view": []}
    with PulseRig() as rig, tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for name, plain in (("plain lines (--plain)", True), ("live view", False)):
                cpu = await listening_cpu(rig, plain, seconds, Path(tmp))
                results[name].append(cpu)
                print(f"round {r + 1}: {name}: {cpu:.2f} % of a core", flush=True)
    plain, live = (statistics.median(v) for v in results.values())
    lines = [
        "# Listening CPU: live view vs plain lines",
        "",
        f"`python -m bench.console_cpu --seconds {seconds:g} --rounds {rounds}`: the default",
        "script `--local` on the PulseAudio rig's microphone (silence) and speaker, in tmux; CPU",
        "of the script process (all threads; the embedded server runs in its own process)",
        "while listening; the two modes alternate in one run.",
        "",
        "| mode | CPU per round (% of one core) | median |",
        "|---|---|---|",
        *(
            f"| {name} | {', '.join(f'{v:.2f}' for v in values)} "
            f"| {statistics.median(values):.2f} |"
            for name, values in results.items()
        ),
        "",
        f"Live view costs {live - plain:+.2f} points of a core "
        f"({live / plain:.2f}x the plain run).",
        "",
    ]
    print("\n".join(lines))
    if write:
        RESULTS.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m bench.console_cpu", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--no-write", action="store_true", help="print only; write nothing in bench/results/"
    )
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.rounds, write=not args.no_write))
