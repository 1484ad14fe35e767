"""Targets for child processes in the tests (importable, so a spawned child can run them), and a
script that starts one and reports its pid: ``python -m tests.support.children MODE``."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

from loguru import logger


def log_then_return(n: int) -> None:
    """Log ``n`` numbered lines through loguru and one through stdlib logging."""
    for i in range(n):
        logger.bind(origin="child-test").info(f"line {i} from pid {os.getpid()}")
    logging.getLogger("child.stdlib").warning("a stdlib warning")


def log_then_raise() -> None:
    logger.info("about to fail")
    raise ValueError("the target failed on purpose")


def sleep_forever() -> None:
    """Say so, then wait for good (until killed or the parent is gone)."""
    logger.info(f"child {os.getpid()} sleeping")
    threading.Event().wait()


def _report(child_pid: int) -> None:
    print(f"child={child_pid}", flush=True)


def main(mode: str) -> None:
    """Start a sleeping child, print both pids, sleep; Ctrl-C ends this parent quietly (its
    children are then stopped by pipelines.processes at interpreter exit)."""
    import signal

    from pipelines.processes import start_child

    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    asleep = threading.Event()
    logger.add(lambda m: asleep.set() if "sleeping" in m.record["message"] else None)
    if mode == "main-thread":
        child = start_child(sleep_forever, name="sleeper")
    else:  # spawned from another thread: no PR_SET_PDEATHSIG, only the parent watch
        box: list = []
        t = threading.Thread(target=lambda: box.append(start_child(sleep_forever, name="sleeper")))
        t.start()
        t.join()
        (child,) = box
    if not asleep.wait(60):  # the child is up and past its start (its log line came back)
        raise SystemExit("the child did not start")
    _report(child.pid)
    print(f"parent={os.getpid()}", flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1])
