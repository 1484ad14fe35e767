"""CPU per listening session, K sessions in ONE process: this code vs a baseline commit, one run.

``python -m bench.session_cost [--sizes 1 25 100] [--seconds 14] [--baseline REV] [--rounds 1]``

For each K, the batch runner (``python -m pipelines.batch --workers 1``: one worker process holds
all K sessions; WAV in and out, every flag as shipped) talks to the scripted server of
:mod:`bench.sessions` (its own process: microphone appends timed, an answer of 2 s every 6 s).
The same K is run on the baseline commit (``git archive REV``, extracted to a temporary folder
and run from there) and on this checkout, alternating which goes first each round, so both see
the same machine load.

Measured in the steady state only (from 1 s after the last session's first append to 0.5 s
before the first session's last one; the import and the connects are outside it; when the
sessions never all stream at once, as 100 sessions starting under load, the whole streaming
span, marked "ramp", with the later sessions' set-up inside it): the CPU of the
batch parent and its worker (kernel counters, sampled every 0.25 s) per session, as % of one
core, and the worker's context switches per second per session (every thread's voluntary +
involuntary switches from ``/proc``: each is a wake-up). The microphone lag p99 (server side)
says whether the sessions kept real time.

Writes ``bench/results/session_cost.md`` and ``session_cost.json`` (read by ``python -m bench``'s
summary).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.baseline import extract
from bench.sessions import link_conversations, start_server, write_conversation

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# main before issue 10's per-frame work (the code the issue measured, plus its landed fixes)
DEFAULT_BASELINE = "802a532"
GOAL_PCT = 0.5


@dataclass
class Cost:
    variant: str
    sessions: int
    ok: int = 0
    window_s: float = 0.0  # the steady state
    audio_s: float = 0.0  # microphone audio the server received in it, all sessions
    cpu_s: float = 0.0  # parent + worker CPU in it
    switches: float = 0.0  # the worker threads' context switches in it
    mic_lag_p99_ms: float = 0.0
    error: str = ""
    ramp: bool = False  # no common steady state: measured over the whole streaming span

    @property
    def cpu_pct(self) -> float:
        return 100.0 * self.cpu_s / self.window_s if self.window_s else 0.0

    @property
    def per_session_pct(self) -> float:
        """CPU per second of one session's real-time audio (% of a core): a session that fell
        behind is charged for the audio it got through, not for the seconds it took."""
        return 100.0 * self.cpu_s / self.audio_s if self.audio_s else 0.0

    @property
    def switches_per_session(self) -> float:
        return self.switches / self.audio_s if self.audio_s else 0.0

    @property
    def real_time(self) -> float:
        """Audio streamed / audio due (1.0 = every session kept real time)."""
        return self.audio_s / (self.sessions * self.window_s) if self.window_s else 0.0


def _switches(pid: int) -> int:
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[-1])
        except (OSError, ValueError):
            pass
    return total


def _sample(ps: object) -> tuple[float, float, int]:
    """(monotonic time, CPU s of the parent and its children, the children's context switches)."""
    import psutil

    now = time.monotonic()
    cpu, switches = 0.0, 0
    procs = [ps]
    try:
        procs += ps.children(recursive=True)  # type: ignore[attr-defined]
    except psutil.Error:
        pass
    for p in procs:
        try:
            t = p.cpu_times()
            cpu += t.user + t.system
            if p is not ps:
                switches += _switches(p.pid)
        except psutil.Error:
            pass
    return now, cpu, switches


def _at(samples: list[tuple[float, float, int]], t: float, i: int) -> float:
    times = [s[0] for s in samples]
    return float(np.interp(t, times, [s[i] for s in samples]))


def run_once(variant: str, root: Path, k: int, tmp: Path, seconds: float) -> Cost:
    import psutil

    cost = Cost(variant, k)
    convs = link_conversations(tmp, k)
    out = tmp / f"out_{variant}_{k}"
    shutil.rmtree(out, ignore_errors=True)
    stats_file = tmp / f"stats_{variant}_{k}.json"
    server, port = start_server(tmp, stats_file)
    argv = [
        sys.executable, "-m", "pipelines.batch", str(convs), "--out", str(out), "--workers", "1",
        "--per-worker", str(k), "--max-connects-per-minute", "1000000",
        "--endpoint", f"http://127.0.0.1:{port}", "--api-key", "bench-key-0123456789",
        "--model", "bench",
        "--idle-grace", "0.5", "--plain",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root)}
    log = open(tmp / f"batch_{variant}_{k}.out", "w+")
    client = subprocess.Popen(
        argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
    )
    ps = psutil.Process(client.pid)
    samples = []
    limit = time.monotonic() + seconds * 4 + 60
    while client.poll() is None and time.monotonic() < limit:
        samples.append(_sample(ps))
        time.sleep(0.25)
    if client.poll() is None:
        client.kill()
        cost.error = "timed out"
    client.wait()
    server.send_signal(signal.SIGTERM)
    server.wait(30)
    log.seek(0)
    output = log.read()
    log.close()
    stats = json.loads(stats_file.read_text())
    arrivals = [conn for conn in stats.get("arrivals", []) if len(conn) >= 2]
    summary = out / "summary.json"
    if summary.exists():
        cost.ok = sum(c["ok"] for c in json.loads(summary.read_text())["conversations"])
    if len(arrivals) < k or len(samples) < 4:
        cost.error = cost.error or f"{len(arrivals)}/{k} sessions streamed; {output[-300:]!r}"
        return cost
    start = max(conn[0][0] for conn in arrivals) + 1.0
    end = min(conn[-1][0] for conn in arrivals) - 0.5
    if end - start < 1.0:  # the sessions never all streamed at once: the whole streaming span
        cost.ramp = True
        start = min(conn[0][0] for conn in arrivals) + 1.0
        end = max(conn[-1][0] for conn in arrivals) - 0.5
    cost.window_s = end - start
    # microphone audio the server received in the window, all sessions together
    cost.audio_s = sum(
        float(np.interp(end, [a[0] for a in conn], [a[1] for a in conn]))
        - float(np.interp(start, [a[0] for a in conn], [a[1] for a in conn]))
        for conn in arrivals
    )
    cost.cpu_s = _at(samples, end, 1) - _at(samples, start, 1)
    cost.switches = _at(samples, end, 2) - _at(samples, start, 2)
    lags = [lag for conn in stats["lags"].values() for pos, lag in conn if pos > 1.0]
    cost.mic_lag_p99_ms = float(np.percentile(lags, 99)) if lags else 0.0
    return cost


def report(costs: list[Cost], base: str, head: str, seconds: float, load: tuple[float, ...]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# CPU per listening session, K sessions in one process (`python -m bench.session_cost`)",
        "",
        f"{when}; {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} (shared VM: compare the two variants of a K, run alternately, not rows "
        f"of different runs). Baseline `{base}` vs this checkout `{head}`. Each session: a "
        f"{seconds:.0f} s microphone WAV paced in real time (40 ms chunks), an answer of 2 s "
        "every 6 s, WAV out, through `python -m pipelines.batch --workers 1` (one worker holds "
        "all K sessions) with every logging flag as shipped. CPU = batch parent + worker in the "
        "steady state, % of one core; per session = that CPU over the seconds of microphone "
        "audio the server received in the window (a session that fell behind is charged for the "
        "audio it got through); switches = the worker's context switches (wake-ups) per second "
        "of a session's audio; real time kept = audio received / audio due.",
        "",
        "| sessions | variant | ok | CPU % | **per session %** | switches/s per session "
        "| real time kept | mic lag p99 ms | window s |",
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for c in costs:
        if c.error:
            lines.append(
                f"| {c.sessions} | {c.variant} | {c.ok}/{c.sessions} | failed: {c.error[:80]} |||||"
            )
            continue
        lines.append(
            f"| {c.sessions} | {c.variant}{' (ramp)' if c.ramp else ''} | {c.ok}/{c.sessions} "
            f"| {c.cpu_pct:.1f} "
            f"| **{c.per_session_pct:.2f}** | {c.switches_per_session:.0f} | {c.real_time:.2f} "
            f"| {c.mic_lag_p99_ms:.0f} | {c.window_s:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _figures(costs: list[Cost], variant: str) -> dict[str, float]:
    """Mean per-session % by K for one variant (over the rounds)."""
    out: dict[str, float] = {}
    for k in sorted({c.sessions for c in costs}):
        vals = [
            c.per_session_pct
            for c in costs
            if c.variant == variant and c.sessions == k and not c.error
        ]
        if vals:
            out[str(k)] = sum(vals) / len(vals)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.session_cost", description=__doc__.splitlines()[0]
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 25, 100])
    p.add_argument(
        "--seconds", type=float, default=14.0, help="length of each session's microphone WAV"
    )
    p.add_argument(
        "--baseline",
        default=DEFAULT_BASELINE,
        help=f"commit to compare with (default {DEFAULT_BASELINE})",
    )
    p.add_argument("--no-baseline", action="store_true", help="measure this checkout only")
    p.add_argument(
        "--no-write", action="store_true", help="print only; write nothing in bench/results/"
    )
    p.add_argument(
        "--rounds", type=int, default=1, help="repetitions of every size (alternating order)"
    )
    args = p.parse_args(argv)
    costs: list[Cost] = []
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    code = ["processors", "pipelines", "transports"]
    status = ["git", "status", "--porcelain", "--", *code]
    dirty = subprocess.run(status, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    head += "+changes" if dirty else ""
    with tempfile.TemporaryDirectory(prefix="bench-session-cost-") as tmp_name:
        tmp = Path(tmp_name)
        write_conversation(tmp / "conversation.wav", args.seconds)
        variants = [("now", ROOT)]
        base = "-"
        if not args.no_baseline:
            base = extract(args.baseline, tmp / "baseline")
            variants.insert(0, ("baseline", tmp / "baseline"))
        for r in range(args.rounds):
            for k in args.sizes:
                order = variants if (r + k) % 2 == 0 else variants[::-1]
                for name, root in order:
                    cost = run_once(name, root, k, tmp, args.seconds)
                    costs.append(cost)
                    print(
                        report([cost], base, head, args.seconds, os.getloadavg()).splitlines()[-1],
                        flush=True,
                    )
    costs.sort(key=lambda c: (c.sessions, c.variant != "baseline"))
    text = report(costs, base, head, args.seconds, os.getloadavg())
    print(text)
    ok = 0 if all(not c.error for c in costs) else 1
    if args.no_write:
        return ok
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "session_cost.md").write_text(text)
    figures = {
        "bench": "session_cost",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load": list(os.getloadavg()),
        "baseline": base,
        "head": head,
        "per_session_pct": {"baseline": _figures(costs, "baseline"), "now": _figures(costs, "now")},
        "goal_pct": GOAL_PCT,
        "runs": [
            {**asdict(c), "per_session_pct": c.per_session_pct, "real_time": c.real_time}
            for c in costs
        ],
    }
    (RESULTS / "session_cost.json").write_text(json.dumps(figures, indent=1) + "\n")
    return ok


if __name__ == "__main__":
    sys.exit(main())
