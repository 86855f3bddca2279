"""Run desktop applications inside bubblewrap.

A sandboxed process sees:

- the whole file system read-only (``--ro-bind / /``), except a private, writable home (a fresh
  temporary directory bound read-write at the same path, ``HOME`` points at it);
- a private ``/tmp`` (tmpfs), ``/dev`` (bwrap's minimal devtmpfs) and ``/proc`` (own pid
  namespace, ``--unshare-pid``: it sees only its own processes);
- no network: ``--unshare-net`` gives it a namespace with only its own loopback, so servers on
  the host's 127.0.0.1 are out of reach, and so are X servers' abstract sockets;
- of the X servers, only ours: its socket file ``/tmp/.X11-unix/XN`` is the one bound into the
  private ``/tmp``, with our cookie file;
- no capabilities and no root: its own user namespace (``--unshare-user``) in which it runs as
  uid/gid 1000 (mapped to the caller's uid outside, so files it writes in its home belong to the
  caller), and ``--cap-drop ALL``. Run as root, bwrap would otherwise keep every capability and
  a process could remount the read-only binds; and apps such as xterm refuse to run as a root
  without ``CAP_CHOWN``;
- ``--die-with-parent``: it is killed when the thread that started it ends, so nothing
  outlives the env. ``--new-session`` stops it from pushing keys into our terminal.

Limits: the home and /tmp are writable and unbounded in size; CPU and memory are not limited;
reading the host's files (outside what root-only permissions hide) is possible.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pixelpilot.errors import DependencyNotInstalled, EnvError

SANDBOX_UID = 1000  # the uid/gid apps see inside their user namespace


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise DependencyNotInstalled("bubblewrap", hint="apt-get install -y bubblewrap")
    return path


def runtime_paths() -> tuple[str, ...]:
    """What a Python app started with this interpreter needs to see inside a sandbox: the
    interpreter (and what its symlinks point to), its virtualenv, its base installation and
    the pixelpilot package (whose files such apps are)."""
    import pixelpilot

    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable)]
    paths.append(os.path.dirname(os.path.realpath(sys.executable)))
    paths.append(os.path.dirname(os.path.abspath(pixelpilot.__file__)))
    return tuple(dict.fromkeys(os.path.realpath(p) for p in paths))


@dataclass
class Sandbox:
    """A bubblewrap jail with its own home. ``display``/``xauthority`` give access to one X
    display; ``network=True`` keeps the host network (off by default). ``ro_paths`` are host
    paths that stay visible, read-only, even where the jail hides them (its private ``/tmp``):
    a checkout or virtualenv under ``/tmp`` needs this for its interpreter to start inside."""

    home: Path | None = None
    display: str | None = None
    xauthority: Path | None = None
    network: bool = False
    env: dict[str, str] = field(default_factory=dict)
    ro_paths: tuple[str | Path, ...] = ()
    _own_home: bool = field(default=False, init=False, repr=False)
    _procs: list[subprocess.Popen] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.home is None:
            self.home = Path(tempfile.mkdtemp(prefix="pixelpilot-home-"))
            self._own_home = True
        self.home = Path(self.home).resolve()
        self.home.mkdir(parents=True, exist_ok=True)

    def argv(self, command: Sequence[str]) -> list[str]:
        """The full bwrap command line that runs ``command`` inside the sandbox."""
        assert self.home is not None
        home = str(self.home)
        args = [bwrap_path(), "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        args += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if not self.network:
            args.append("--unshare-net")
        args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        for path in dict.fromkeys(str(Path(p).resolve()) for p in self.ro_paths):
            if Path(path).exists():
                args += ["--ro-bind", path, path]
        args += ["--bind", home, home, "--chdir", home, "--clearenv"]
        env = {
            "HOME": home,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TERM": "xterm",
        }
        if self.display:
            number = self.display.lstrip(":").split(".")[0]
            sock = f"/tmp/.X11-unix/X{number}"
            if not Path(sock).exists():
                raise EnvError(f"X socket {sock} of display {self.display} does not exist")
            args += ["--ro-bind", sock, sock]
            env["DISPLAY"] = f":{number}"
            if self.xauthority is not None:
                inner = f"{home}/.Xauthority"
                args += ["--ro-bind", str(self.xauthority), inner]
                env["XAUTHORITY"] = inner
        env.update(self.env)
        for key, value in env.items():
            args += ["--setenv", key, value]
        return [*args, "--", *command]

    def spawn(self, command: Sequence[str], *, log: Path | None = None) -> subprocess.Popen:
        """Start ``command`` inside the sandbox; it is stopped by ``close()``."""
        out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                self.argv(command),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            if log is not None:
                out.close()
        self._procs.append(proc)
        return proc

    def run(
        self, command: Sequence[str], *, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` inside the sandbox to completion, capturing its output."""
        return subprocess.run(
            self.argv(command), capture_output=True, text=True, timeout=timeout, check=False
        )

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.poll() is None]

    def stop(self) -> None:
        """Stop every process started with ``spawn`` (the home stays)."""
        from pixelpilot.envs.display import _kill

        for proc in self._procs:
            _kill(proc)
        self._procs.clear()

    def close(self) -> None:
        """Stop the processes and delete the home if the sandbox made it."""
        self.stop()
        if self._own_home and self.home is not None:
            # the apps die just after bwrap (by the kernel, as their pid namespace ends) and
            # may still write a file while the tree is removed: retry until it is gone
            deadline = time.monotonic() + 3.0
            while self.home.exists() and time.monotonic() < deadline:
                shutil.rmtree(self.home, ignore_errors=True)
                if self.home.exists():
                    time.sleep(0.05)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
