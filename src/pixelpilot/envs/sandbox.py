"""Run desktop applications inside a bubblewrap jail (``Jail``).

A jailed process sees a private, minimal root, built on an empty tmpfs:

- read-only: ``/usr`` (with the ``/bin``, ``/lib``, ... links of a merged-/usr system), a short
  list of ``/etc`` entries an X app needs (fonts, the loader cache, X11 app defaults, terminfo,
  ``hosts``, the time zone; ``resolv.conf`` and certificates only with ``network=True``), the
  font cache, and ``ro_paths`` (the interpreter and its virtualenv); ``/etc/passwd`` and
  ``/etc/group`` are written for the jail (one user, uid 1000) so no host account is listed;
- hidden: everything else of the host: ``/etc/shadow`` and the rest of ``/etc``, ``/root``,
  ``/home``, ``/run``, ``/var``, ``/srv``, ``/opt``, ``/mnt``, ``/sys``; with them every Unix
  socket of the host (D-Bus, docker, databases): a socket under a read-only bind is still
  connectable, so the only way to keep it out of reach is not to show it;
- writable: a fresh home (``HOME``, bound at the same path as outside) and a private ``/tmp``;
  the root itself is remounted read-only once built;
- ``/dev``: bwrap's minimal set (null, zero, random, tty, pts, shm); ``/proc``: a new procfs of
  its own pid namespace (``--unshare-pid``: it sees only its own processes), remounted
  read-only, so ``/proc/sys`` (sysctls such as ``kernel.core_pattern``),
  ``/proc/sysrq-trigger`` and ``/proc/pressure`` cannot be written;
- no network: ``--unshare-net`` gives it a namespace with only its own loopback, so servers on
  the host's 127.0.0.1 are out of reach, and so are the abstract sockets of X servers;
- of the X servers, only ours: its socket ``/tmp/.X11-unix/XN`` is the one Unix socket in the
  jail, with our cookie file;
- no capabilities and no root: its own user namespace (``--unshare-user``) in which it runs as
  uid/gid 1000 (mapped to the caller's uid outside, so files it writes in its home belong to the
  caller), and ``--cap-drop ALL``. Run as root, bwrap would otherwise keep every capability and
  a process could remount the read-only binds; and apps such as xterm refuse to run as a root
  without ``CAP_CHOWN``. ``--disable-userns``: it cannot make user namespaces of its own (the
  way into most kernel attack surface that needs privileges);
- ``--die-with-parent``: it is killed when the thread that started it ends, so nothing
  outlives the env. ``--new-session`` stops it from pushing keys into our terminal.

Limits: the home and /tmp are writable and unbounded in size; CPU and memory are not limited;
files under ``ro_paths`` and ``/usr`` are readable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pixelpilot.errors import DependencyNotInstalled, EnvError

JAIL_UID = 1000  # the uid/gid apps see inside their user namespace
# /etc entries an X app needs; everything else of the host's /etc stays hidden
ETC_ENTRIES = (
    "alternatives", "bash.bashrc", "fonts", "gai.conf", "host.conf", "hosts", "inputrc",
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "locale.alias", "localtime", "mime.types",
    "nsswitch.conf", "python3", "terminfo", "timezone", "X11", "xdg",
)  # fmt: skip
ETC_NETWORK = ("resolv.conf", "ssl", "ca-certificates", "ca-certificates.conf")
SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")  # merged-/usr links or dirs
OTHER_PATHS = ("/var/cache/fontconfig",)


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise DependencyNotInstalled("bubblewrap", hint="apt-get install -y bubblewrap")
    return path


def runtime_paths() -> tuple[str, ...]:
    """What a Python app started with this interpreter needs to see inside a jail: the
    interpreter (and what its symlinks point to), its virtualenv, its base installation and
    the pixelpilot package (whose files such apps are)."""
    import pixelpilot

    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable)]
    paths.append(os.path.dirname(os.path.realpath(sys.executable)))
    paths.append(os.path.dirname(os.path.abspath(pixelpilot.__file__)))
    return tuple(dict.fromkeys(os.path.realpath(p) for p in paths))


@dataclass
class Jail:
    """A bubblewrap jail with its own home. ``display``/``xauthority`` give access to one X
    display; ``network=True`` keeps the host network (off by default). ``ro_paths`` are host
    paths that stay visible, read-only, inside the private root: the interpreter and the
    virtualenv of a Python app (``runtime_paths()``). ``own_home``: ``close()`` deletes the home
    (always so when the jail made it)."""

    home: Path | None = None
    display: str | None = None
    xauthority: Path | None = None
    network: bool = False
    env: dict[str, str] = field(default_factory=dict)
    ro_paths: tuple[str | Path, ...] = ()
    own_home: bool = False
    _procs: list[subprocess.Popen] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.home is None:
            self.home = Path(tempfile.mkdtemp(prefix="pixelpilot-home-"))
            self.own_home = True
        self.home = Path(self.home).resolve()
        self.home.mkdir(parents=True, exist_ok=True)

    def argv(self, command: Sequence[str], files: dict[str, int] | None = None) -> list[str]:
        """The full bwrap command line that runs ``command`` in the jail; ``files`` maps a
        path inside to a readable fd whose content becomes that (read-only) file."""
        assert self.home is not None
        home = str(self.home)
        args = [bwrap_path(), "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        args += ["--unshare-user", "--disable-userns"]  # no user namespaces of its own
        args += ["--uid", str(JAIL_UID), "--gid", str(JAIL_UID)]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if not self.network:
            args.append("--unshare-net")
        args += self._root_args()
        for dest, fd in (files or {}).items():
            args += ["--perms", "0444", "--ro-bind-data", str(fd), dest]
        args += ["--bind", home, home]
        env = {
            "HOME": home,
            "USER": "user",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TERM": "xterm",
        }
        if self.display:
            args += self._display_args(env)
        args += ["--remount-ro", "/", "--chdir", home, "--clearenv"]
        env.update(self.env)
        for key, value in env.items():
            args += ["--setenv", key, value]
        return [*args, "--", *command]

    def _root_args(self) -> list[str]:
        """The private root: /usr and the few host paths an app needs, read-only."""
        args = ["--ro-bind", "/usr", "/usr"]
        for name in SYSTEM_LINKS:
            path = Path("/", name)
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        etc = [*ETC_ENTRIES, *(ETC_NETWORK if self.network else ())]
        etc += [p.name for p in Path("/etc").glob("python3.*")]
        for name in etc:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        for path in OTHER_PATHS:
            args += ["--ro-bind-try", path, path]
        args += ["--dev", "/dev", "--proc", "/proc", "--remount-ro", "/proc", "--tmpfs", "/tmp"]
        for path in dict.fromkeys(str(Path(p).resolve()) for p in self.ro_paths):
            if Path(path).exists():
                args += ["--ro-bind", path, path]
        return args

    def _display_args(self, env: dict[str, str]) -> list[str]:
        """Our X display's socket and cookie, and nothing else of X."""
        assert self.display is not None and self.home is not None
        number = self.display.lstrip(":").split(".")[0]
        sock = f"/tmp/.X11-unix/X{number}"
        if not Path(sock).exists():
            raise EnvError(f"X socket {sock} of display {self.display} does not exist")
        args = ["--ro-bind", sock, sock]
        env["DISPLAY"] = f":{number}"
        if self.xauthority is not None:
            inner = f"{self.home}/.Xauthority"
            args += ["--ro-bind", str(self.xauthority), inner]
            env["XAUTHORITY"] = inner
        return args

    def _accounts(self) -> dict[str, str]:
        """``/etc/passwd`` and ``/etc/group`` of the jail: its one user, and nobody."""
        return {
            "/etc/passwd": f"user:x:{JAIL_UID}:{JAIL_UID}:user:{self.home}:/bin/bash\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
            "/etc/group": f"user:x:{JAIL_UID}:\nnogroup:x:65534:\n",
        }

    @contextmanager
    def _command(self, command: Sequence[str]) -> Iterator[tuple[list[str], list[int]]]:
        """The bwrap argv for ``command`` and the fds it reads the jail's files from."""
        fds: dict[str, int] = {}
        try:
            for dest, text in self._accounts().items():
                read, write = os.pipe()
                fds[dest] = read
                with os.fdopen(write, "w") as out:  # small: fits the pipe's buffer
                    out.write(text)
            yield self.argv(command, fds), list(fds.values())
        finally:
            for fd in fds.values():
                os.close(fd)

    def spawn(self, command: Sequence[str], *, log: Path | None = None) -> subprocess.Popen:
        """Start ``command`` in the jail; it is stopped by ``close()``."""
        out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            with self._command(command) as (argv, fds):
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
                    start_new_session=True,
                    pass_fds=fds,
                )
        finally:
            if log is not None:
                out.close()
        self._procs.append(proc)
        return proc

    def run(
        self, command: Sequence[str], *, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in the jail to completion, capturing its output."""
        with self._command(command) as (argv, fds):
            return subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False, pass_fds=fds
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
        """Stop the processes and delete the home if it is the jail's own."""
        self.stop()
        if self.own_home and self.home is not None:
            # the apps die just after bwrap (by the kernel, as their pid namespace ends) and
            # may still write a file while the tree is removed: retry until it is gone
            deadline = time.monotonic() + 3.0
            while self.home.exists() and time.monotonic() < deadline:
                shutil.rmtree(self.home, ignore_errors=True)
                if self.home.exists():
                    time.sleep(0.05)

    def __enter__(self) -> Jail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
