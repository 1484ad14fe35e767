"""``python -m pipelines.batch`` (console script ``voicelive-batch``): many conversations at once.

::

    voicelive-batch questions/ --out results --workers 2 [the default script's flags]

Every conversation (a WAV of the user's side, or a ``.txt`` of typed turns) runs as its own
Voice Live session in a pool of prewarmed worker processes; ``--out`` receives a folder per
conversation (session log, events JSONL, technical log, ``reply.wav``, ``report.json``) and
``summary.json``, ``summary.csv`` (a row per turn), ``latency.png``. Exit 0 when every
conversation ended cleanly, 1 when any failed (each named with its reason), 2 for bad flags or
unreadable inputs (before any connection), 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from typing import Any, NoReturn

from pipelines.batch.jobs import Job, Result, find_conversations, make_jobs
from pipelines.config import AgentConfig, _check_log_dir, _path, build_parser, parse_config, shorten
from processors.console import error, say
from processors.voicelive.endpoint import Endpoint
from processors.voicelive.errors import ConfigError

SINGLE_SESSION_FLAGS = ("input_wav", "output_wav", "input_device", "output_device", "list_devices")


def build_batch_parser() -> argparse.ArgumentParser:
    """The default script's flags plus the conversations and the pool's settings."""
    p = build_parser()
    p.prog = "voicelive-batch"
    p.description = (
        "Run many conversations with a Voice Live agent (or model) over a pool of worker processes "
        "and report how it answered and how fast. Flags override environment variables, which "
        "override .env."
    )
    p.add_argument(
        "conversations",
        nargs="+",
        type=_path,
        help="WAV (user side) or .txt (typed turns) files, or folders of them",
    )
    batch = p.add_argument_group("batch")
    batch.add_argument(
        "--out",
        type=_path,
        required=True,
        help="folder for the results (a folder per conversation)",
    )
    batch.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes (default: the core count)",
    )
    batch.add_argument(
        "--per-worker", type=int, default=8, help="conversations at a time per worker (default 8)"
    )
    batch.add_argument(
        "--worker-memory-mb",
        type=float,
        help="replace a worker whose memory grows past this (its conversations fail)",
    )
    batch.add_argument(
        "--max-connects-per-minute",
        type=int,
        default=30,
        help="new connections per minute across all workers (default 30, the service's limit)",
    )
    return p


def parse_batch(argv: list[str] | None) -> tuple[AgentConfig, argparse.Namespace, list[Job]]:
    """Flags, environment and inputs, all checked before any connection (ConfigError)."""
    config, args = parse_config(argv, parser=build_batch_parser())
    for dest in SINGLE_SESSION_FLAGS:
        if getattr(args, dest):
            raise ConfigError(
                f"--{dest.replace('_', '-')} is the default script's: "
                "a batch takes its conversations as arguments"
            )
    for flag, value, low in (
        ("--workers", args.workers, 1),
        ("--per-worker", args.per_worker, 1),
        ("--max-connects-per-minute", args.max_connects_per_minute, 1),
    ):
        if value < low:
            raise ConfigError(f"{flag} must be at least {low}")
    if args.worker_memory_mb is not None and args.worker_memory_mb <= 0:
        raise ConfigError("--worker-memory-mb must be a positive number of megabytes")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {str(args.out)!r} is a file, not a folder")
    try:
        _check_log_dir(args.out)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("--log-dir", "--out")) from None
    jobs = make_jobs(find_conversations(args.conversations), args.out, config)
    return config, args, jobs


class Progress:
    """Progress on the console: a bar on a terminal (rich), plain lines otherwise."""

    def __init__(self, total: int, plain: bool) -> None:
        self.total = total
        self.done = self.failed = self.running = 0
        self.started_at = time.monotonic()
        self._bar: Any = None
        if not plain and sys.stdout.isatty():
            try:
                from rich.progress import (
                    BarColumn,
                    TextColumn,
                    TimeElapsedColumn,
                )
                from rich.progress import (
                    Progress as RichProgress,
                )
            except ImportError:
                pass
            else:
                self._bar = RichProgress(
                    TextColumn("conversations"),
                    BarColumn(),
                    TextColumn("{task.completed}/{task.total} done"),
                    TextColumn("{task.fields[running]} running, {task.fields[failed]} failed"),
                    TimeElapsedColumn(),
                )
                self._task = self._bar.add_task("batch", total=total, running=0, failed=0)
                self._bar.start()

    def event(self, kind: str, data: Any) -> None:
        """Count and print one pool event (started, done, worker-died, notice); update the bar."""
        if kind == "started":
            self.running += 1
        elif kind == "done":
            result: Result = data
            self.done += 1
            self.running = max(0, self.running - 1)
            self.failed += not result.ok
            line = f"[{self.done}/{self.total}] {result.name}: " + (
                "ok" if result.ok else f"FAILED ({result.reason})"
            )
            self._print(line)
        elif kind == "worker-died":
            self._print(f"warning: {data}; its conversations failed, a new worker takes over")
        elif kind == "notice":
            self._print(str(data))
        if self._bar is not None:
            self._bar.update(
                self._task, completed=self.done, running=self.running, failed=self.failed
            )

    def _print(self, line: str) -> None:
        say(line)  # redacted; above the bar while it shows (rich redirects stdout)

    def close(self) -> None:
        """Stop the progress bar, if one is shown."""
        if self._bar is not None:
            self._bar.stop()


async def run_batch(config: AgentConfig, args: argparse.Namespace, jobs: list[Job]) -> int:
    """Run the jobs over the pool (against a local server of its own with ``--local``) and
    write the summary; returns the exit code."""
    args.out.mkdir(parents=True, exist_ok=True, mode=0o700)
    async with contextlib.AsyncExitStack() as stack:
        if config.local:  # in its own process, shared by every worker's sessions
            from localserver.process import LocalServerError, local_endpoint

            try:
                endpoint = await stack.enter_async_context(local_endpoint())
            except LocalServerError as exc:
                error(str(exc))
                return 1
            jobs = [_with_endpoint(job, endpoint) for job in jobs]
        return await _run_pool(args, jobs)


async def _run_pool(args: argparse.Namespace, jobs: list[Job]) -> int:
    from pipelines.batch.pool import WorkerPool
    from pipelines.batch.summary import plot_latency, table, write_summary

    progress = Progress(len(jobs), args.plain)
    pool = WorkerPool(
        jobs,
        workers=min(args.workers, len(jobs)),
        per_worker=args.per_worker,
        memory_mb=args.worker_memory_mb,
        connects_per_minute=args.max_connects_per_minute,
        on_event=progress.event,
    )
    loop = asyncio.get_running_loop()
    interrupts = 0

    def interrupted(signum: int) -> None:
        nonlocal interrupts
        interrupts += 1
        if signum == signal.SIGINT and interrupts == 1:
            progress.event(
                "notice",
                f"stopping: no new conversations; {pool.running} running ones finish "
                "(Ctrl-C again to cancel them)",
            )
            pool.drain()
        else:
            progress.event("notice", "cancelling the running conversations")
            pool.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted, sig)
    started = time.monotonic()
    try:
        results = await pool.run()
    finally:
        progress.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    extra = {
        "workers": pool.workers,
        "per_worker": pool.per_worker,
        "workers_replaced": pool.replaced,
        "seconds": round(time.monotonic() - started, 1),
    }
    summary_totals = write_summary(args.out, results, extra)
    png = plot_latency(args.out, results)
    say(table(results, summary_totals))
    if png is None and summary_totals["latency_ms"]["samples"]:
        say("note: latency.png needs matplotlib (pip install matplotlib)")
    say(f"results in {args.out}/ (summary.csv, summary.json{', latency.png' if png else ''})")
    if interrupts:
        return 130
    return 0 if summary_totals["failed"] == 0 else 1


def _with_endpoint(job: Job, endpoint: Endpoint) -> Job:
    import dataclasses

    job.config = dataclasses.replace(job.config, endpoint=endpoint, local=False)
    return job


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pipelines.batch`` / ``voicelive-batch``."""
    from loguru import logger

    logger.remove()
    try:
        config, args, jobs = parse_batch(argv)
    except ConfigError as exc:
        error(shorten(str(exc)))
        return 2
    try:
        return asyncio.run(run_batch(config, args, jobs))
    except KeyboardInterrupt:
        return 130


def cli() -> NoReturn:
    """The console script ``voicelive-batch``: :func:`main`, then an exit that spares the
    interpreter's finalization (see :func:`pipelines.processes.exit_without_finalizing`)."""
    from pipelines.processes import exit_without_finalizing

    exit_without_finalizing(main())


if __name__ == "__main__":
    cli()
