"""Every benchmark of ``python -m bench`` still runs: each as a subprocess at a tiny size.

Benches are not run by anything else in the suite, and they rot (bench.hotpath raised for days).
Each bench here runs with ``--no-write`` (``bench/results/`` is left alone) and the smallest
sizes its options take; the test checks it exited 0 and that its table is there with both sides
measured: numbers, and a ratio that is finite and is the ratio of the two figures it prints.
Never a timing threshold: the figures of a tiny run on a loaded machine mean nothing.

The benches run concurrently (started together by one module fixture; each test waits for its
own), so the module costs about the longest of them, not their sum. A bench listed in
``LEFT_OUT`` is too long to run at any size this module can afford; the reason is given there,
and a new bench in ``bench.__main__.BENCHES`` must be added to one of the two.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.__main__ import BENCHES
from tests.support.script_run import ROOT, script_env

pytestmark = pytest.mark.alone  # nine benches at once load both cores: no other test alongside
WAIT_S = 100  # a bound on any one bench here (they take 3-20 s)


def rows(text: str, first: str, exact: bool = False) -> list[list[str]]:
    """The cells of every markdown table row whose first cell starts with (is) ``first``."""
    found = []
    for line in text.splitlines():
        if line.startswith("| "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] == first or (not exact and cells[0].startswith(first)):
                found.append(cells)
    return found


def number(cell: str) -> float:
    """The leading number of a cell such as ``372 (n=1 trials)``, ``**1.32x**`` or ``2,400 us``."""
    match = re.match(r"[*]*(-?[\d,]+(?:\.\d+)?)", cell.strip())
    assert match, f"no number in cell {cell!r}"
    value = float(match.group(1).replace(",", ""))
    assert math.isfinite(value), cell
    return value


def check_ratio(top: str, bottom: str, ratio: str) -> None:
    """Both sides measured (positive figures) and ``ratio`` is top / bottom, up to rounding."""
    assert number(top) > 0 and number(bottom) > 0, (top, bottom)
    check_rounded_ratio(top, bottom, ratio)


def check_hotpath(out: str) -> None:
    timed = [r for r in rows(out, "(") if len(r) == 8 and r[3] not in ("–", "-")]
    assert len(timed) >= 6, out  # (a) two receive paths, (b) four send paths
    for _, _, ours_cpu, pipecat_cpu, ratio_cpu, ours_wall, pipecat_wall, ratio_wall in timed:
        check_ratio(ours_cpu, pipecat_cpu, ratio_cpu)
        check_ratio(ours_wall, pipecat_wall, ratio_wall)


def check_perframe(out: str) -> None:
    paths = rows(out, "40 ms mic frame") + rows(out, "100 ms delta")
    assert len(paths) == 4, out  # hot and paced, each direction
    for _, ours, stock, ratio in paths:
        check_ratio(stock, ours, ratio)  # the column is pipecat / ours


def half_unit(cell: str) -> float:
    """Half the unit of the last digit ``cell``'s number is printed with: its rounding error."""
    match = re.match(r"[*]*-?[\d,]+(?:\.(\d+))?", cell.strip())
    assert match, f"no number in cell {cell!r}"
    return 0.5 * 10.0 ** -len(match.group(1) or "")


def check_rounded_ratio(top: str, bottom: str, ratio: str) -> None:
    """``ratio`` is top / bottom of the unrounded figures: within what the rounding of the
    printed ones allows (any finite ratio when the bottom may be zero)."""
    a, b, r = number(top), number(bottom), number(ratio)
    a_lo, a_hi = a - half_unit(top), a + half_unit(top)
    b_lo, b_hi = b - half_unit(bottom), b + half_unit(bottom)
    if b_lo <= 0 <= b_hi:
        return
    quotients = [x / y for x in (a_lo, a_hi) for y in (b_lo, b_hi)]
    slack = half_unit(ratio)
    assert min(quotients) - slack <= r <= max(quotients) + slack, (top, bottom, ratio)


def check_multiprocess(out: str) -> None:
    kinds = rows(out, "40 ms audio frame") + rows(out, "InterruptionFrame")
    assert len(kinds) == 2, out
    for _, _, bare, hop, own, ratio, lat_hop, lat_own in kinds:
        assert number(bare) > 0, bare
        # hop and own are differences to the bare pipeline: finite, and the ratio is theirs
        check_rounded_ratio(own, hop, ratio)
        for latency in (lat_hop, lat_own):
            assert all(number(p) > 0 for p in latency.split("/")), latency
    pickled, packed, less = re.search(
        r"pickle protocol 5 ([\d.]+) µs, hand-packed ([\d.]+) µs \(([\d.]+)x less\)", out
    ).groups()
    check_ratio(pickled, packed, less)


def check_session_cost(out: str) -> None:
    table = rows(out, "1", exact=True)[-2:]  # each printed as it ends, then the whole table
    assert [r[1] for r in table] == ["baseline", "now"], out  # both sides, none failed
    for _, variant, ok, cpu, per_session, _, real_time, *_ in table:
        assert ok == "1/1", (variant, ok)
        assert number(cpu) > 0 and number(per_session) > 0 and number(real_time) > 0, variant


def check_sessions(out: str) -> None:
    *_, row = rows(out, "1", exact=True)  # printed as it ends, then in the whole table
    assert row[1:3] == ["1", "1/1"], row  # one worker; the session completed
    assert number(row[3]) > 0 and number(row[6]) > 0, row  # client CPU, RSS


def check_localserver(out: str) -> None:
    (rtf,) = [r for r in rows(out, "") if len(r) == 5 and r[0][0].isdigit()]
    check_ratio(rtf[0], rtf[2], rtf[4])  # x real time (wall) = audio s / wall s
    (ramp,) = rows(out, "1", exact=True)
    assert int(ramp[1]) + int(ramp[2]) <= 1, ramp
    assert "Largest N where every session kept up:" in out


def check_soak(out: str) -> None:
    assert number(rows(out, "user turns in the input")[0][1]) >= 1, out
    assert rows(out, "client exit code")[0][1] == "0", out
    assert "Every turn heard and answered exactly once: yes." in out, out


def check_console(out: str) -> None:
    (plain,), (live,) = rows(out, "plain lines"), rows(out, "live view")
    ratio = re.search(r"\(([\d.]+)x the plain run\)", out)
    assert ratio, out
    check_ratio(live[2], plain[2], ratio.group(1))


def check_reliability(out: str) -> None:
    for what in ("the client's next upgrade request", "the new connection's"):
        (row,) = rows(out, what)
        assert all(number(c) > 0 for c in row[1:]), row


@dataclass(frozen=True)
class Smoke:
    args: list[str]
    check: Callable[[str], None]


SMOKE = {
    "hotpath": Smoke(
        ["--deltas", "10", "--frames", "20", "--reps", "1", "--warmup", "0"], check_hotpath
    ),
    "perframe": Smoke(["--rounds", "1", "--frames", "10", "--deltas", "10"], check_perframe),
    "multiprocess": Smoke(
        ["--frames", "10", "--interruptions", "3", "--rounds", "1"], check_multiprocess
    ),
    "session_cost": Smoke(["--sizes", "1", "--seconds", "3"], check_session_cost),
    "sessions": Smoke(["--sizes", "1", "--workers", "1", "--seconds", "3"], check_sessions),
    "localserver": Smoke(["--max-sessions", "1", "--budget-s", "60"], check_localserver),
    "soak": Smoke(["--minutes", "0.1", "--session-s", "4", "--turn-every", "2"], check_soak),
    "console": Smoke(["--seconds", "0.5", "--rounds", "1"], check_console),
    "reliability": Smoke(["--runs", "1", "--only-drop"], check_reliability),
}
LEFT_OUT = {
    "logcost": "extracts and runs the default script from two baseline commits and this tree, "
    "and times the redactor of a third: about 30 s at its smallest",
    "transports": "six client configurations on the PulseAudio rig, each a pipeline process: "
    "about 35 s at one trial per configuration",
    "stream_settings": "eight PortAudio stream strategies on the PulseAudio rig, each a client "
    "process: about 25 s at two trials",
}


def test_every_bench_is_smoked_or_left_out_with_a_reason() -> None:
    assert set(SMOKE) | set(LEFT_OUT) == set(BENCHES)
    assert not set(SMOKE) & set(LEFT_OUT)


def results_files() -> dict[str, int]:
    """bench/results/: every file's modification time (ns)."""
    return {p.name: p.stat().st_mtime_ns for p in Path(ROOT, "bench", "results").iterdir()}


def stop(proc: subprocess.Popen) -> None:
    """End a bench still running: Ctrl-C to its process group (its clean-up runs: servers, the
    PulseAudio rig, tmux), then SIGKILL to whatever of the group is left."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    # the group outlives its leader while a child of the bench runs: its id is not reused
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """Every bench of ``SMOKE`` started at once, each in a session of its own: ({name: (process,
    its output file)}, bench/results/ before)."""
    folder = tmp_path_factory.mktemp("benches")
    before = results_files()
    procs = {}
    for name, smoke in SMOKE.items():
        command = [*BENCHES[name], *smoke.args, "--no-write"]  # a flag given twice: the last wins
        out = (folder / f"{name}.out").open("w+")
        procs[name] = (
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=script_env(),
                stdin=subprocess.DEVNULL,  # not the caller's terminal
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            ),
            out,
        )
    yield procs, before
    for proc, out in procs.values():
        stop(proc)
        out.close()


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_bench_runs_and_prints_its_table(name: str, started: tuple) -> None:
    procs, before = started
    proc, out = procs[name]
    try:
        code = proc.wait(WAIT_S)
    except subprocess.TimeoutExpired:
        stop(proc)
        code = f"still running after {WAIT_S} s"
    out.seek(0)
    text = out.read()
    assert code == 0, f"{name} exited {code}:\n{text[-3000:]}"
    SMOKE[name].check(text)
    assert results_files() == before, "a bench wrote under bench/results/ despite --no-write"
