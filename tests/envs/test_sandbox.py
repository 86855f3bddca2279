"""The bubblewrap jail: no network, no writes outside its home, nothing writable in /proc or
/sys, no host Unix socket but our X display's, no host files beyond what apps need."""

from __future__ import annotations

import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pixelpilot.envs.display import XDisplay
from pixelpilot.envs.sandbox import Jail

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing")


@pytest.fixture(scope="module")
def xdisplay() -> Iterator[XDisplay]:
    with XDisplay((320, 240), window_manager=False) as display:
        yield display


@pytest.fixture
def http_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


CONNECT = (
    "import socket, sys\n"
    "s = socket.socket()\n"
    "s.settimeout(3)\n"
    "try:\n"
    "    s.connect(('127.0.0.1', int(sys.argv[1])))\n"
    "    print('connected')\n"
    "except OSError as exc:\n"
    "    print('refused', exc.errno)\n"
)


def test_sandboxed_process_cannot_reach_a_server_on_host_loopback(
    http_port: int, tmp_path: Path
) -> None:
    with Jail(home=tmp_path / "home") as box:
        jailed = box.run(["python3", "-c", CONNECT, str(http_port)])
    with Jail(home=tmp_path / "home2", network=True) as box:
        open_net = box.run(["python3", "-c", CONNECT, str(http_port)])
    assert jailed.stdout.startswith("refused"), jailed
    assert open_net.stdout.strip() == "connected", open_net  # the server was really there


def test_writes_land_in_home_only(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    script = (
        f"echo in > $HOME/in.txt; echo out > {outside}/out.txt; echo etc > /etc/pp-test;"
        " echo tmp > /tmp/pp-private-test; ls $HOME"
    )
    with Jail(home=tmp_path / "home") as box:
        done = box.run(["sh", "-c", script])
        assert (box.home / "in.txt").read_text() == "in\n"
    assert "Read-only file system" in done.stderr
    assert not (outside / "out.txt").exists()
    assert not Path("/etc/pp-test").exists()
    assert not Path("/tmp/pp-private-test").exists()  # /tmp inside is private


def test_no_capabilities_no_root_and_own_pid_namespace(tmp_path: Path) -> None:
    with Jail(home=tmp_path / "home") as box:
        done = box.run(
            ["sh", "-c", "grep CapEff /proc/self/status; id -u; ls /proc | grep -c '^[0-9]'"]
        )
        remount = box.run(["mount", "-o", "remount,rw", "/"])
        nested = box.run(["unshare", "--user", "true"])
    cap, uid, nprocs = done.stdout.split("\n")[:3]
    assert cap.split()[1] == "0000000000000000"
    assert uid == "1000"
    assert int(nprocs) < 6  # bwrap's init, sh, grep/ls: not the host's processes
    assert remount.returncode != 0
    assert nested.returncode != 0  # no user namespace of its own: no capabilities to regain


def test_only_our_x_display_is_reachable(xdisplay: XDisplay, tmp_path: Path) -> None:
    if shutil.which("xdpyinfo") is None:
        pytest.skip("xdpyinfo (x11-utils) missing")
    with Jail(home=tmp_path / "home", display=xdisplay.name, xauthority=xdisplay.xauthority) as box:
        sockets = box.run(["ls", "/tmp/.X11-unix"])
        ours = box.run(["xdpyinfo"])
        other = box.run(["sh", "-c", "DISPLAY=:4242 xdpyinfo"])
    assert sockets.stdout.split() == [f"X{xdisplay.number}"]
    assert ours.returncode == 0 and "dimensions:    320x240" in ours.stdout
    assert other.returncode != 0


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _pids_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    marker = f"{time.time_ns() % 10**6}.25"
    box = Jail(home=tmp_path / "home")
    proc = box.spawn(["sh", "-c", f"sleep {marker} & sleep {marker}"])
    deadline = time.monotonic() + 5
    while len(_pids_with(f"sleep\x00{marker}")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    inner = _pids_with(f"sleep\x00{marker}")
    assert len(inner) == 2
    box.close()
    time.sleep(0.2)
    assert not _alive(proc.pid)
    assert not [p for p in inner if _alive(p)]
    assert not box.home.exists() or box.home == tmp_path / "home"


def test_ro_paths_stay_visible_under_the_private_tmp(tmp_path: Path) -> None:
    """A checkout or virtualenv under /tmp (hidden by the jail's private /tmp) can still run
    its interpreter inside when its paths are given as ``ro_paths``; it stays read-only."""
    import sys

    from pixelpilot.envs.sandbox import runtime_paths

    tool_dir = tmp_path / "checkout"  # tmp_path lives under /tmp
    tool_dir.mkdir()
    (tool_dir / "app.py").write_text("print('app ran')\n")
    command = ["sh", "-c", f"cat {tool_dir}/app.py && echo x > {tool_dir}/w"]
    with Jail(home=tmp_path / "home") as box:
        hidden = box.run(command)
    assert "No such file" in hidden.stderr  # without ro_paths the private /tmp hides it
    with Jail(home=tmp_path / "home2", ro_paths=(tool_dir, *runtime_paths())) as box:
        shown = box.run(command)
        ran = box.run([sys.executable, str(tool_dir / "app.py")])
    assert "print('app ran')" in shown.stdout
    assert "Read-only file system" in shown.stderr and not (tool_dir / "w").exists()
    assert ran.stdout.strip() == "app ran", ran.stderr


WRITABLE = (
    "import os, stat, sys\n"
    "found = []\n"
    "for top in sys.argv[1:]:\n"
    "    for path, dirs, files in os.walk(top):\n"
    "        if path == '/proc':  # the jail's own processes may write their own files\n"
    "            own = ('self', 'thread-self')\n"
    "            dirs[:] = [d for d in dirs if not d.isdigit() and d not in own]\n"
    "        for name in files:\n"
    "            full = os.path.join(path, name)\n"
    "            try:\n"
    "                if not stat.S_ISREG(os.lstat(full).st_mode):\n"
    "                    continue\n"
    "                os.close(os.open(full, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY))\n"
    "            except OSError:\n"
    "                continue\n"
    "            found.append(full)\n"
    "print(len(found), *found[:5])\n"
)


def test_nothing_in_proc_or_sys_is_writable(tmp_path: Path) -> None:
    """Open every file of /proc (but the jail's own processes) and /sys for writing, as an
    attacker would: sysctls such as kernel.core_pattern would reach the host kernel."""
    with Jail(home=tmp_path / "home") as box:
        walked = box.run(["python3", "-c", WRITABLE, "/proc", "/sys"], timeout=120)
        core = box.run(["sh", "-c", "echo x >> /proc/sys/kernel/core_pattern"])
        listed = box.run(["sh", "-c", "ls /proc/sys/kernel | wc -l"])
    assert walked.returncode == 0, walked.stderr
    assert walked.stdout.split()[0] == "0", walked.stdout  # not one writable file
    assert core.returncode != 0 and "Read-only file system" in core.stderr, core
    assert int(listed.stdout) > 10  # /proc/sys is there to read, only not to write


SOCKETS = (
    "import os, socket, stat, sys\n"
    "found = []\n"
    "for top in os.listdir('/'):\n"
    "    if top in ('proc', 'usr'):\n"
    "        continue\n"
    "    for path, dirs, files in os.walk('/' + top):\n"
    "        for name in dirs + files:\n"
    "            full = os.path.join(path, name)\n"
    "            if stat.S_ISSOCK(os.lstat(full).st_mode):\n"
    "                found.append(full)\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "try:\n"
    "    s.connect(sys.argv[1])\n"
    "    print('connected', *found)\n"
    "except OSError as exc:\n"
    "    print('refused', *found)\n"
)


@pytest.fixture
def host_socket() -> Iterator[Path]:
    """A Unix socket server on the host, outside /tmp (which the jail replaces anyway), where a
    D-Bus or database socket could live."""
    import socket
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="pixelpilot-sock-", dir="/var/tmp"))
    path = folder / "service.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(4)
    yield path
    server.close()
    shutil.rmtree(folder, ignore_errors=True)


def test_no_unix_socket_but_our_x_display(
    xdisplay: XDisplay, host_socket: Path, tmp_path: Path
) -> None:
    """A socket under a read-only bind is still connectable: the jail must not show it."""
    import socket

    probe = socket.socket(socket.AF_UNIX)
    probe.connect(str(host_socket))  # the server is really there
    probe.close()
    with Jail(home=tmp_path / "home", display=xdisplay.name, xauthority=xdisplay.xauthority) as box:
        done = box.run(["python3", "-c", SOCKETS, str(host_socket)], timeout=60)
    assert done.returncode == 0, done.stderr
    verdict, *sockets = done.stdout.split()
    assert verdict == "refused"
    assert sockets == [f"/tmp/.X11-unix/X{xdisplay.number}"]


def test_host_files_are_hidden(tmp_path: Path) -> None:
    """A private, minimal root: no /etc/shadow, no /root or /home, no host accounts; what an X
    app needs (fonts, the loader, Python) is there."""
    script = (
        "for p in /etc/shadow /etc/gshadow /root /home /run /srv /sys/class; do"
        " [ -e $p ] && echo visible $p; done; cat /etc/passwd; id -un;"
        " test -r /etc/fonts/fonts.conf && echo fonts"
    )
    with Jail(home=tmp_path / "home") as box:
        done = box.run(["sh", "-c", script])
        tk = box.run(["python3", "-c", "import tkinter; print('tk', tkinter.TkVersion)"])
    assert "visible" not in done.stdout, done.stdout
    accounts = [line.split(":")[0] for line in done.stdout.splitlines() if ":x:" in line]
    assert accounts == ["user", "nobody"]
    assert done.stdout.split()[-2:] == ["user", "fonts"]
    assert tk.stdout.startswith("tk "), tk.stderr
