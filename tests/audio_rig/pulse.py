"""A private, headless PulseAudio server with a fake speaker and a fake microphone.

Works as root, with no stdin, no D-Bus and no sound card (CI). Layout, as in the audio-rig
recipe (shared/audio-rig/pulse_up.sh):

* speaker: sink ``spk`` = ``module-pipe-sink`` paced by the system clock, writing everything it
  plays to ``<root>/spk.fifo``; :class:`SpeakerCapture` reads that FIFO in a thread, with arrival
  times (an unread FIFO just drops the audio, playback still runs in real time);
* microphone: source ``mic`` = remap of the monitor of null sink ``micsink``; feed it with
  :meth:`PulseRig.play_into_mic` (``paplay -d micsink``). A silent keep-alive stream keeps the
  null sink rendering in small blocks (otherwise the first read from ``mic`` stalls ~2 s).
* echo path (optional, :meth:`PulseRig.add_echo_path`): ``module-loopback`` from ``spk.monitor``
  into ``micsink`` with its rate adjustment off (``adjust_time=0``; with it on, the delay drifts
  by milliseconds), 40 ms late and turned down to 0.5 (-6 dB): the microphone hears the speaker
  as on one sound card, mixed with whatever :meth:`PulseRig.play_into_mic` plays (the user).

Use ``PulseRig.start()`` / ``stop()`` or ``with PulseRig() as rig:``; :attr:`PulseRig.env` holds
``PULSE_SERVER`` etc. for clients (set them before ``pyaudio.PyAudio()`` is created).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

KEEPALIVE_SETTLE_SECS = 2.1  # the null sink finishes the 2 s block it began before the keep-alive
ECHO_LATENCY_MS = 40  # the echo path's delay (20 ms underruns under load and then jumps ~30 ms)
ECHO_GAIN = 0.5  # -6 dB


class PulseRigError(RuntimeError):
    """The PulseAudio server could not be started."""


class PulseRig:
    """Starts and stops one PulseAudio daemon in its own folder (see the module docstring)."""

    def __init__(self, root: str | Path | None = None, rate: int = 24000):
        # in /tmp, not $TMPDIR: a socket path must fit in 108 bytes
        self.root = Path(root or tempfile.mkdtemp(prefix="pa-rig-", dir="/tmp"))
        self.rate = rate
        self.fifo = self.root / "spk.fifo"
        self.env = {
            "PULSE_RUNTIME_PATH": str(self.root / "run"),
            "PULSE_STATE_PATH": str(self.root / "state"),
            "PULSE_SERVER": f"unix:{self.root / 'run' / 'native'}",
        }
        self._keepalive: subprocess.Popen | None = None
        self._echo_module: str | None = None
        self._saved_env: dict[str, str | None] = {}

    @staticmethod
    def available() -> bool:
        return all(shutil.which(tool) for tool in ("pulseaudio", "pactl", "pacat", "paplay"))

    def __enter__(self) -> PulseRig:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, export: bool = True) -> None:
        """Start the daemon, load the devices, start the keep-alive; ``export`` sets os.environ."""
        (self.root / "run").mkdir(parents=True, exist_ok=True)
        (self.root / "state").mkdir(exist_ok=True)
        os.chmod(self.root / "run", 0o700)
        script = self.root / "rig.pa"
        fmt = f"format=s16le rate={self.rate} channels=1"
        script.write_text(
            "\n".join(
                [
                    ".fail",
                    "load-module module-native-protocol-unix auth-anonymous=1",
                    f"load-module module-pipe-sink sink_name=spk file={self.fifo} {fmt} "
                    "use_system_clock_for_timing=yes "
                    "sink_properties=device.description=FakeSpeaker",
                    f"load-module module-null-sink sink_name=micsink {fmt} "
                    "sink_properties=device.description=FakeMicFeed",
                    f"load-module module-remap-source source_name=mic master=micsink.monitor {fmt} "
                    "source_properties=device.description=FakeMic",
                    "set-default-sink spk",
                    "set-default-source mic",
                    "",
                ]
            )
        )
        env = {**os.environ, **self.env}
        result = subprocess.run(
            [
                "pulseaudio",
                "--daemonize=yes",
                "--system=false",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "--use-pid-file=yes",
                f"--log-target=file:{self.root}/pulse.log",
                "--log-level=notice",
                "--disable-shm=yes",
                "-n",
                "-F",
                str(script),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            log = self.root / "pulse.log"
            detail = log.read_text()[-2000:] if log.exists() else result.stderr
            raise PulseRigError(f"pulseaudio failed to start: {detail.strip()}")
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["pactl", "info"], env=env, stdin=subprocess.DEVNULL, capture_output=True
            ).returncode
            != 0
        ):
            if time.monotonic() > deadline:
                raise PulseRigError("pulseaudio did not answer `pactl info` within 10 s")
            time.sleep(0.05)
        with open("/dev/zero", "rb") as zeros:
            self._keepalive = subprocess.Popen(
                [
                    "pacat",
                    "--playback",
                    "-d",
                    "micsink",
                    "--latency-msec=10",
                    "--raw",
                    "--format=s16le",
                    f"--rate={self.rate}",
                    "--channels=1",
                    "--client-name=mic-keepalive",
                ],
                env=env,
                stdin=zeros,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        time.sleep(KEEPALIVE_SETTLE_SECS)
        if export:
            for key, value in self.env.items():
                self._saved_env[key] = os.environ.get(key)
                os.environ[key] = value

    def stop(self) -> None:
        """Stop the keep-alive and the daemon (by pid), restore the env, remove the folder."""
        if self._keepalive:
            self._keepalive.terminate()
            self._keepalive.wait(timeout=5)
            self._keepalive = None
        pid_file = self.root / "run" / "pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 5
            while _running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def daemon_pid(self) -> int:
        """The PulseAudio daemon's pid (0 if it is not running)."""
        try:
            return int((self.root / "run" / "pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def play_into_mic(self, wav: str | Path) -> subprocess.Popen:
        """Start ``paplay -d micsink wav`` (real-time paced); wait on the returned process."""
        return subprocess.Popen(
            ["paplay", "-d", "micsink", "--latency-msec=20", str(wav)],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
        )

    def add_echo_path(self, latency_ms: int = ECHO_LATENCY_MS, gain: float = ECHO_GAIN) -> None:
        """Let the microphone hear the speaker, ``latency_ms`` late and scaled by ``gain``."""
        self.remove_echo_path()
        self._echo_module = self._pactl(
            "load-module",
            "module-loopback",
            "source=spk.monitor",
            "sink=micsink",
            f"latency_msec={latency_ms}",
            "adjust_time=0",
            "source_dont_move=true",
            "sink_dont_move=true",
            "sink_input_properties=media.name=echo-path",
        ).strip()
        inputs = self._pactl("list", "short", "sink-inputs").splitlines()
        [index] = [line.split()[0] for line in inputs if "module-loopback" in line]
        self._pactl("set-sink-input-volume", index, f"{gain}")

    def remove_echo_path(self) -> None:
        """Take the speaker-to-microphone path away again (no-op without one)."""
        if self._echo_module:
            self._pactl("unload-module", self._echo_module)
            self._echo_module = None

    def _pactl(self, *args: str) -> str:
        result = subprocess.run(
            ["pactl", *args],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if result.returncode != 0:
            raise PulseRigError(f"pactl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def speaker(self) -> SpeakerCapture:
        return SpeakerCapture(self.fifo)


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (a daemon's parent may never reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


class SpeakerCapture:
    """Reads what the fake speaker plays, in a thread, with the arrival time of each block."""

    def __init__(self, fifo: str | Path):
        self._fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.blocks: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SpeakerCapture:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Drop whatever is stale in the FIFO, then record from now on."""
        try:
            while os.read(self._fd, 1 << 16):
                pass
        except BlockingIOError:
            pass
        self._thread = threading.Thread(target=self._run, name="speaker-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                continue
            if data:
                self.blocks.append((time.monotonic(), data))

    def stop(self) -> np.ndarray:
        """Stop reading; return everything captured as int16 samples."""
        self._stop.set()
        if self._thread:
            self._thread.join()
            self._thread = None
            os.close(self._fd)
        return self.samples()

    def samples(self) -> np.ndarray:
        data = b"".join(block for _, block in list(self.blocks))
        return np.frombuffer(data[: len(data) - len(data) % 2], dtype=np.int16)

    def arrival_time(self, sample_index: int, rate: int = 24000) -> float:
        """When ``sample_index`` reached the speaker: the ``time.monotonic()`` its block was read,
        plus its offset inside the block (so samples of one block do not share a time)."""
        start = 0
        for at, block in list(self.blocks):
            end = start + len(block) // 2
            if end > sample_index:
                return at + (sample_index - start) / rate
            start = end
        raise IndexError(sample_index)

    def wait_for_samples(self, count: int, timeout: float) -> bool:
        """Block until ``count`` samples were captured (used from threads, not the loop)."""
        deadline = time.monotonic() + timeout
        while sum(len(b) for _, b in list(self.blocks)) // 2 < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True
