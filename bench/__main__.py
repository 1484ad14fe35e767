"""``python -m bench`` (``make bench``): every side-by-side benchmark, one after the other.

Each writes its table (and plot) and a JSON of its figures under ``bench/results/``; ``--only
NAME`` runs one of them. The run ends with ONE table (:mod:`bench.summary`): issue 10's figures,
ours next to pipecat's from the same bench run, the goal, met or not ("not measured" for a bench
that has not run).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHES = {
    "perframe": [sys.executable, "-m", "bench.perframe"],
    "session_cost": [sys.executable, "-m", "bench.session_cost"],
    "hotpath": [sys.executable, "-m", "bench.hotpath"],
    "logcost": [sys.executable, "-m", "bench.logcost"],
    "transports": [sys.executable, "-m", "bench.transports.bargein"],
    "stream_settings": [sys.executable, "-m", "bench.transports.stream_settings"],
    "localserver": [sys.executable, "bench/localserver/bench_localserver.py"],
    "reliability": [sys.executable, "-m", "bench.reliability"],
    "console": [sys.executable, "-m", "bench.console_cpu"],
    "multiprocess": [sys.executable, "-m", "bench.multiprocess"],
    "sessions": [sys.executable, "-m", "bench.sessions"],
    "soak": [sys.executable, "-m", "bench.soak", "--minutes", "15"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        choices=sorted(BENCHES),
        action="append",
        help="run only this benchmark (repeatable)",
    )
    args = parser.parse_args(argv)
    failed = []
    for name in args.only or BENCHES:
        command = BENCHES[name]
        if command[1] == "-m" and not (ROOT / (command[2].replace(".", "/") + ".py")).exists():
            print(f"== {name}: not present, skipped")
            continue
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        if subprocess.run(command, cwd=ROOT).returncode != 0:
            failed.append(name)
    from bench import summary

    print("== summary: python -m bench.summary", flush=True)
    summary.main()
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
