"""A real Asterisk in a Debian chroot, for development and integration tests.

The sandbox is a ``debootstrap`` tree of Debian unstable with the ``asterisk``
package, kept in the cache directory and reused across runs. ``up`` installs the
project's ``asterisk/`` configuration and callcore's rendered prompts into it, mounts
``/proc``, starts Asterisk as the chroot's ``asterisk`` user and waits until ARI
answers; ``down`` stops it and unmounts ``/proc`` again. Everything listens on
127.0.0.1 only.

This is an operations tool, not part of the event loop: plain synchronous code with
subprocess and urllib. It needs root (debootstrap, chroot and mount do).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

#: Debian packages installed into the chroot. asterisk-moh-opsound-gsm is only a
#: Recommends of asterisk, which debootstrap's --include does not follow.
PACKAGES = ("asterisk", "asterisk-core-sounds-en-gsm", "asterisk-moh-opsound-gsm")
SUITE = "sid"
ASTERISK_BIN = "/usr/sbin/asterisk"
#: Directories inside the chroot the asterisk user must own.
OWNED_DIRS = (
    "run/asterisk",
    "var/lib/asterisk",
    "var/log/asterisk",
    "var/spool/asterisk",
    # ARI stores recordings (voicemail, call recordings) here; Debian's package does not create it.
    "var/spool/asterisk/recording",
    "var/cache/asterisk",
)
BUILD_TIMEOUT = 1800.0
SANDBOX_RESOLV_CONF = "# callcore sandbox: no DNS on purpose (everything is 127.0.0.1)\n"

Log = Callable[[str], None]


class SandboxError(RuntimeError):
    """The sandbox cannot do what was asked; the message says why and what to do."""


def default_cache_dir() -> Path:
    """``$CALLCORE_CACHE_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/callcore``."""
    explicit = os.environ.get("CALLCORE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "callcore"


def default_config_dir() -> Path:
    """The repository's ``asterisk/`` directory (src/callcore/sandbox → ../../../asterisk)."""
    return Path(__file__).resolve().parents[3] / "asterisk"


def default_sounds_dir() -> Path:
    """``<repo>/.state/sounds``: where ``callcore.prompts`` renders by default."""
    return Path(__file__).resolve().parents[3] / ".state" / "sounds"


def default_prompts_file() -> Path:
    """The repository's ``sounds/prompts.yaml``."""
    return Path(__file__).resolve().parents[3] / "sounds" / "prompts.yaml"


@dataclass
class SandboxStatus:
    """What ``status()`` found. ``str()`` gives a few human-readable lines."""

    root: Path
    built: bool
    running: bool
    pid: int | None
    ari_ok: bool
    log_path: Path
    console_log_path: Path
    version: str | None = None
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.running:
            state = f"running (pid {self.pid})"
            state += f", ARI answers (Asterisk {self.version})" if self.ari_ok else ", ARI does not answer"
        elif self.built:
            state = "stopped"
        else:
            state = "not built (the first `up` builds it)"
        lines = [
            f"asterisk sandbox: {state}",
            f"  root:        {self.root}",
            f"  log:         {self.log_path}",
            f"  console log: {self.console_log_path}",
        ]
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)


# ---------------------------------------------------------------- helpers


def _unescape_mount_path(raw: str) -> str:
    # /proc/self/mountinfo escapes space, tab, newline and backslash as octal.
    out, i = [], 0
    while i < len(raw):
        if raw[i] == "\\" and i + 3 < len(raw) and raw[i + 1 : i + 4].isdigit():
            out.append(chr(int(raw[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: str | None = None) -> list[str]:
    """Mount points of this mount namespace (from /proc/self/mountinfo)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return []
    points = []
    for line in mountinfo.splitlines():
        parts = line.split()
        if len(parts) > 4:
            points.append(_unescape_mount_path(parts[4]))
    return points


def mounts_under(path: Path, mountinfo: str | None = None) -> list[str]:
    """Mount points at or below ``path``, deepest first (the order to unmount them)."""
    base = os.path.realpath(path)
    found = [p for p in mount_points(mountinfo) if p == base or p.startswith(base.rstrip("/") + "/")]
    return sorted(set(found), key=len, reverse=True)


def read_pid_file(path: Path) -> int | None:
    """The pid in ``path``, or None when it is missing, empty or not a number."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    try:
        pid = int(text)
    except ValueError:
        return None
    return pid if pid > 0 else None


def pid_alive(pid: int) -> bool:
    """True when ``pid`` is a live process (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state follows the parenthesised command name, which may contain spaces.
    state = stat.rpartition(")")[2].split()[:1]
    return state != ["Z"]


def processes_in_root(root: Path, proc: Path = Path("/proc")) -> list[int]:
    """Pids of live processes whose root directory is ``root`` (chrooted into it)."""
    target = os.path.realpath(root)
    pids = []
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "root") == target:
                pids.append(int(entry.name))
        except OSError:
            continue
    return sorted(p for p in pids if pid_alive(p))


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _is_asterisk_daemon(pid: int) -> bool:
    # The daemon runs with -f; `asterisk -rx …` clients also live in the chroot.
    args = _cmdline(pid)
    return bool(args) and args[0].endswith("asterisk") and "-r" not in args and "-rx" not in args


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _passwd_ids(passwd: Path, user: str) -> tuple[int, int]:
    for line in passwd.read_text().splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[0] == user:
            return int(parts[2]), int(parts[3])
    raise SandboxError(f"user {user!r} not found in {passwd}: the chroot's asterisk package is broken; rebuild it")


def config_files(config_dir: Path, node: str | None = None) -> dict[str, Path]:
    """The config files of a node: those of ``config_dir``, with ``config_dir/nodes/<node>/`` replacing any
    file of the same name (a second node's ports and trunks; docs/scaling.md)."""
    dirs = [config_dir] + ([config_dir / "nodes" / node] if node else [])
    files: dict[str, Path] = {}
    for d in dirs:
        if d.is_dir():
            files.update({p.name: p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")})
    return files


def install_config(config_dir: Path, etc: Path, node: str | None = None) -> list[str]:
    """Make ``etc`` (the chroot's /etc/asterisk) hold exactly the files of ``config_dir`` (see ``config_files``).

    The stock directory is moved aside to ``<etc>.dist`` the first time; later runs
    replace the directory wholesale, so a file removed from the repo disappears too.
    Returns the names of the installed files.
    """
    files = [p for _, p in sorted(config_files(config_dir, node).items())]
    if not files:
        raise SandboxError(f"no Asterisk configuration files in {config_dir}")
    dist = etc.with_name(etc.name + ".dist")
    if etc.exists() and not dist.exists():
        etc.rename(dist)
    new = etc.with_name(etc.name + ".new")
    old = etc.with_name(etc.name + ".old")
    for stale in (new, old):
        if stale.exists():
            shutil.rmtree(stale)
    new.mkdir(mode=0o755)
    for src in files:
        dst = new / src.name
        shutil.copyfile(src, dst)
        dst.chmod(0o644)
    if etc.exists():
        etc.rename(old)
    new.rename(etc)
    if old.exists():
        shutil.rmtree(old)
    return [p.name for p in files]


def config_differs(config_dir: Path, etc: Path, node: str | None = None) -> list[str]:
    """Names of files whose installed copy in ``etc`` differs from ``config_dir`` (or is missing/extra)."""
    want = {name: p.read_bytes() for name, p in config_files(config_dir, node).items()}
    have = {p.name: p.read_bytes() for p in etc.iterdir() if p.is_file()} if etc.is_dir() else {}
    return sorted(n for n in set(want) | set(have) if want.get(n) != have.get(n))


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- prompts (sound files)

#: Asterisk's sounds directory inside the chroot (astdatadir /usr/share/asterisk + sounds).
SOUNDS_DIR_IN_ROOT = "/usr/share/asterisk/sounds"
#: Per-language directories owned wholly by callcore: stale files in them are removed.
OWNED_SOUND_DIR = "callcore"


def resolve_in_root(root: Path, path: str, max_links: int = 40) -> Path:
    """Host path of ``path`` inside the chroot ``root``, following symlinks as the chroot sees them.

    Debian's ``sounds/en`` is an absolute symlink (``/etc/alternatives/...``); from the
    host it would point at the host's own files. Missing components are fine (the
    result is where they would be created); ``..`` never leaves ``root``.
    """
    todo = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = root.joinpath(*done, part)
        if candidate.is_symlink():
            links += 1
            if links > max_links:
                raise SandboxError(f"too many symlinks resolving {path} in {root}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p not in ("", ".")] + todo
            continue
        done.append(part)
    return root.joinpath(*done)


def install_sounds(src_dir: Path, root: Path, sounds_dir: str = SOUNDS_DIR_IN_ROOT) -> list[str]:
    """Copy every file under ``src_dir`` (``<lang>/<dir>/<file>``) into ``root``'s sounds dir.

    Unchanged files are left as they are; new or changed ones are written atomically
    (Asterisk may be playing the old one). Files in a ``<lang>/callcore`` directory of
    the chroot that ``src_dir`` does not have are removed. Hidden files (the render
    manifest) are skipped. Returns the changed relative paths.
    """
    files = sorted(
        p.relative_to(src_dir)
        for p in src_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(src_dir).parts)
    )
    changed: list[str] = []
    wanted_by_dir: dict[Path, set[str]] = {}
    for rel in files:
        if len(rel.parts) < 2:
            continue  # a sound belongs to a language directory
        dest_dir = resolve_in_root(root, f"{sounds_dir}/{rel.parent.as_posix()}")
        wanted_by_dir.setdefault(dest_dir, set()).add(rel.name)
        dest = dest_dir / rel.name
        data = (src_dir / rel).read_bytes()
        try:
            if dest.read_bytes() == data:
                continue
        except OSError:
            pass
        _makedirs_readable(dest_dir)
        tmp = dest_dir / f".{rel.name}.callcore-tmp"
        tmp.write_bytes(data)
        tmp.chmod(0o644)
        os.replace(tmp, dest)
        changed.append(rel.as_posix())
    # Prune <lang>/callcore directories to exactly what src_dir has.
    for lang_dir in (p for p in src_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (lang_dir / OWNED_SOUND_DIR).is_dir():
            continue
        dest_dir = resolve_in_root(root, f"{sounds_dir}/{lang_dir.name}/{OWNED_SOUND_DIR}")
        keep = wanted_by_dir.get(dest_dir, set())
        for old in dest_dir.iterdir() if dest_dir.is_dir() else ():
            if old.is_file() and old.name not in keep:
                old.unlink()
                changed.append(f"{lang_dir.name}/{OWNED_SOUND_DIR}/{old.name} (removed)")
    return changed


def _makedirs_readable(path: Path) -> None:
    # Like mkdir -p, but every directory it creates is 0755 whatever the umask, so the
    # chroot's asterisk user can read the sounds.
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        d.mkdir()
        d.chmod(0o755)


# ---------------------------------------------------------------- the sandbox


class AsteriskSandbox:
    """Build, start, stop and inspect the chrooted Asterisk.

    >>> sandbox = AsteriskSandbox()          # repo's asterisk/ config, default cache
    >>> print(sandbox.up())                  # builds on first use (~1 min), then seconds
    >>> sandbox.cli("pjsip show endpoints")
    >>> sandbox.down()
    """

    def __init__(
        self,
        config_dir: Path | None = None,
        cache_dir: Path | None = None,
        ari_url: str = "http://127.0.0.1:8088",
        ari_user: str = "callcore",
        ari_password: str = "callcore-sandbox",
        log: Log | None = print,
        sounds_dir: Path | None = None,
        prompts_file: Path | None = None,
        node: str | None = None,
    ) -> None:
        #: A second (third…) Asterisk node: its own chroot copied from the first, the repo's config with
        #: ``asterisk/nodes/<node>/`` over it, e.g. ``AsteriskSandbox(node="b", ari_url="http://127.0.0.1:8089")``.
        self.node = node
        self.config_dir = Path(config_dir) if config_dir is not None else default_config_dir()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.ari_url = ari_url.rstrip("/")
        self.ari_user = ari_user
        self.ari_password = ari_password
        self._log = log or (lambda _msg: None)
        self._proc: subprocess.Popen[bytes] | None = None
        #: Rendered prompts (callcore.prompts) installed on ``up``; texts rendered from.
        self.sounds_dir = Path(sounds_dir) if sounds_dir is not None else default_sounds_dir()
        self.prompts_file = Path(prompts_file) if prompts_file is not None else default_prompts_file()

    @classmethod
    def for_node(cls, node: str, config_dir: Path | None = None, **kw: object) -> AsteriskSandbox:
        """Another node of the sandbox: its ARI port is the one its ``http.conf`` binds."""
        config_dir = Path(config_dir) if config_dir is not None else default_config_dir()
        http = config_files(config_dir, node).get("http.conf")
        port = None
        if http is not None:
            for line in http.read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "bindport":
                    port = value.strip()
        if not port:
            raise SandboxError(f"node {node}: no bindport in {config_dir}/nodes/{node}/http.conf")
        return cls(config_dir=config_dir, ari_url=f"http://127.0.0.1:{port}", node=node, **kw)  # type: ignore[arg-type]

    # -- paths

    @property
    def _suffix(self) -> str:
        return f"-{self.node}" if self.node else ""

    @property
    def root(self) -> Path:
        """The finished chroot tree."""
        return self.cache_dir / f"asterisk-root{self._suffix}"

    @property
    def partial_root(self) -> Path:
        """Where debootstrap builds; renamed to ``root`` only once it succeeded."""
        return self.cache_dir / f"asterisk-root{self._suffix}.partial"

    @property
    def pid_file(self) -> Path:
        return self.cache_dir / f"asterisk{self._suffix}.pid"

    @property
    def build_log_path(self) -> Path:
        return self.cache_dir / "asterisk-build.log"

    @property
    def log_path(self) -> Path:
        """Asterisk's own log (logger.conf: messages.log)."""
        return self.root / "var/log/asterisk/messages.log"

    @property
    def console_log_path(self) -> Path:
        """The daemon's stdout/stderr."""
        return self.root / "var/log/asterisk/console.log"

    @property
    def etc_dir(self) -> Path:
        return self.root / "etc/asterisk"

    @property
    def built(self) -> bool:
        return (self.root / ASTERISK_BIN.lstrip("/")).is_file()

    # -- building

    def build(self, log: Log | None = None) -> None:
        """Debootstrap the chroot once; a finished tree is reused as it is."""
        log = log or self._log
        if self.built:
            return
        _require_root("build the Asterisk sandbox")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        partial = self.partial_root
        if self.node:
            self._copy_first_node(log)
            return
        if self._partial_finished():
            log(f"asterisk sandbox: finishing the complete tree left in {partial}")
        else:
            if shutil.which("debootstrap") is None:
                raise SandboxError(
                    "debootstrap is not installed: run scripts/install-system-deps.sh (or apt-get install debootstrap)"
                )
            if partial.exists():
                log(f"asterisk sandbox: removing the unfinished tree {partial}")
                self._remove_tree(partial)
            log(
                f"asterisk sandbox: building Debian {SUITE} + Asterisk in {partial} "
                f"(debootstrap, ≈1 minute and ≈500 MB; log: {self.build_log_path})"
            )
            cmd = ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, str(partial)]
            mirror = os.environ.get("CALLCORE_DEBIAN_MIRROR")
            if mirror:
                cmd.append(mirror)
            started = time.monotonic()
            with self.build_log_path.open("wb") as out:
                try:
                    result = subprocess.run(
                        cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=BUILD_TIMEOUT
                    )
                except subprocess.TimeoutExpired:
                    raise SandboxError(
                        f"debootstrap did not finish within {BUILD_TIMEOUT:.0f} s; see {self.build_log_path}"
                    ) from None
            # debootstrap may leave /proc etc. mounted in the tree on failure.
            for point in mounts_under(partial):
                subprocess.run(["umount", "-l", point], check=False)
            if result.returncode != 0 or not self._partial_finished():
                raise SandboxError(
                    f"debootstrap failed (exit {result.returncode}); last lines of {self.build_log_path}:\n"
                    + _tail(self.build_log_path)
                )
            log(f"asterisk sandbox: built in {time.monotonic() - started:.0f} s")
        partial.rename(self.root)

    def _copy_first_node(self, log: Log) -> None:
        """Another node's tree is a copy of the first node's (seconds, instead of another debootstrap)."""
        first = AsteriskSandbox(config_dir=self.config_dir, cache_dir=self.cache_dir, log=self._log)
        first.build(log)
        partial = self.partial_root
        if partial.exists():
            self._remove_tree(partial)
        log(f"asterisk sandbox: copying {first.root} to {self.root} for node {self.node}")
        # -x: not into the first node's mounted /proc; the copy gets its own mount at start.
        result = subprocess.run(["cp", "-a", "-x", str(first.root), str(partial)], capture_output=True, text=True)
        if result.returncode != 0:
            raise SandboxError(f"copying the Asterisk tree failed: {result.stderr.strip()}")
        for leftover in ("var/lib/asterisk/astdb.sqlite3", "var/log/asterisk/messages.log"):
            (partial / leftover).unlink(missing_ok=True)
        partial.rename(self.root)

    def _partial_finished(self) -> bool:
        # debootstrap deletes its work directory <target>/debootstrap when it succeeds.
        p = self.partial_root
        return (p / ASTERISK_BIN.lstrip("/")).is_file() and not (p / "debootstrap").exists()

    def _remove_tree(self, tree: Path) -> None:
        for point in mounts_under(tree):
            subprocess.run(["umount", "-l", point], check=False)
        if mounts_under(tree):
            raise SandboxError(f"cannot remove {tree}: something is still mounted in it ({mounts_under(tree)})")
        shutil.rmtree(tree)

    # -- state

    def _daemon_pids(self) -> list[int]:
        """Live Asterisk daemons of this sandbox: the recorded pid, plus any chrooted leftover."""
        pids = set()
        recorded = read_pid_file(self.pid_file)
        if recorded and pid_alive(recorded) and _is_asterisk_daemon(recorded):
            try:
                if os.readlink(f"/proc/{recorded}/root") == os.path.realpath(self.root):
                    pids.add(recorded)
            except OSError:
                pass
        if self.root.exists():
            pids.update(p for p in processes_in_root(self.root) if _is_asterisk_daemon(p))
        return sorted(pids)

    def _proc_mounted(self) -> bool:
        return os.path.realpath(self.root / "proc") in mount_points()

    def ari_info(self, timeout: float = 2.0) -> dict | None:
        """``GET /ari/asterisk/info``, or None when ARI does not answer with 200."""
        token = base64.b64encode(f"{self.ari_user}:{self.ari_password}".encode()).decode()
        req = urllib.request.Request(
            f"{self.ari_url}/ari/asterisk/info", headers={"Authorization": f"Basic {token}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                if resp.status != 200:
                    return None
                return json.loads(resp.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def status(self) -> SandboxStatus:
        """Whether the sandbox is built and running, its pid, whether ARI answers, log paths."""
        pids = self._daemon_pids()
        info = self.ari_info() if pids else None
        notes = []
        if len(pids) > 1:
            notes.append(f"warning: several Asterisk daemons in the chroot: {pids}")
        if not pids and self.ari_info(timeout=0.5) is not None:
            notes.append(f"note: an Asterisk outside this sandbox answers ARI at {self.ari_url}")
        if pids and self.etc_dir.is_dir() and self.config_dir.is_dir():
            changed = config_differs(self.config_dir, self.etc_dir, self.node)
            if changed:
                notes.append(
                    "config in the repo differs from the running one ("
                    + ", ".join(changed)
                    + "): `callcore asterisk down` then `up` to apply it"
                )
        return SandboxStatus(
            root=self.root,
            built=self.built,
            running=bool(pids),
            pid=pids[0] if pids else None,
            ari_ok=info is not None,
            log_path=self.log_path,
            console_log_path=self.console_log_path,
            version=(info or {}).get("system", {}).get("version") if info else None,
            notes=notes,
        )

    # -- up / down

    def up(self, timeout: float = 60) -> SandboxStatus:
        """Build if needed, install the config, mount /proc, start Asterisk, wait for ARI.

        A no-op (apart from waiting for ARI) when this sandbox's Asterisk already runs.
        Either way callcore's prompts are rendered (what changed, when espeak-ng and sox
        exist) and installed into the chroot: see ``install_prompts``.
        """
        _require_root("start the Asterisk sandbox")
        if not self.config_dir.is_dir():
            raise SandboxError(f"Asterisk configuration directory not found: {self.config_dir}")
        pids = self._daemon_pids()
        if pids:
            st = self._wait_for_ari(pids[0], timeout)
            changed = config_differs(self.config_dir, self.etc_dir, self.node)
            if changed:
                # The project's config changed since this Asterisk started (a new dialplan context, say):
                # install it and reload, so a running sandbox never tests yesterday's configuration.
                install_config(self.config_dir, self.etc_dir, self.node)
                self.cli("core reload")
                st.notes.insert(0, f"already running: reloaded changed config ({', '.join(changed)})")
            else:
                st.notes.insert(0, "already running: left as it is")
            self._prompts_on_up()  # new sound files need no restart
            return st
        deadline = time.monotonic() + 5.0  # an Asterisk that was just stopped may still hold the port briefly
        while port_open("127.0.0.1", _port_of(self.ari_url)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if port_open("127.0.0.1", _port_of(self.ari_url)):
            raise SandboxError(
                f"something else already listens on {self.ari_url} (another Asterisk?); "
                "stop it before starting the sandbox"
            )
        self.build()
        self._prepare()
        installed = install_config(self.config_dir, self.etc_dir, self.node)
        self._log(f"asterisk sandbox: installed {len(installed)} config files from {self.config_dir}")
        self._prompts_on_up()
        self.console_log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.console_log_path.open("ab") as out:
            out.write(f"\n=== callcore sandbox start {time.strftime('%F %T')} ===\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                ["chroot", str(self.root), ASTERISK_BIN, "-f", "-n", "-U", "asterisk", "-G", "asterisk"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the CLI that started it; no terminal signals
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        self._log(f"asterisk sandbox: started pid {self._proc.pid}, waiting for ARI at {self.ari_url}")
        try:
            return self._wait_for_ari(self._proc.pid, timeout)
        except SandboxError:
            self.down(log=lambda _m: None)
            raise

    def _wait_for_ari(self, pid: int, timeout: float) -> SandboxStatus:
        started = time.monotonic()
        deadline = started + timeout
        while True:
            if self._proc is not None and self._proc.pid == pid:
                self._proc.poll()
            if not pid_alive(pid):
                raise SandboxError(
                    f"Asterisk (pid {pid}) exited during start-up; last lines of {self.console_log_path}:\n"
                    + _tail(self.console_log_path)
                )
            if self.ari_info(timeout=1.0) is not None:
                st = self.status()
                self._log(f"asterisk sandbox: ARI answered after {time.monotonic() - started:.1f} s")
                return st
            if time.monotonic() >= deadline:
                raise SandboxError(
                    f"ARI did not answer at {self.ari_url} within {timeout:.0f} s; last lines of "
                    f"{self.log_path}:\n{_tail(self.log_path)}\n--- {self.console_log_path}:\n"
                    + _tail(self.console_log_path)
                )
            time.sleep(0.2)

    def _prepare(self) -> None:
        root = self.root
        if not self._proc_mounted():
            subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
        # No DNS in the sandbox: every address is 127.0.0.1, and no lookup may leave the
        # machine. (PJSIP still opens its resolver's client sockets; with no nameserver
        # listed, glibc's default makes them query 127.0.0.1 only.)
        (root / "etc/resolv.conf").write_text(SANDBOX_RESOLV_CONF)
        uid, gid = _passwd_ids(root / "etc/passwd", "asterisk")
        for rel in OWNED_DIRS:
            top = root / rel
            top.mkdir(parents=True, exist_ok=True)
            for dirpath, dirnames, filenames in os.walk(top):
                for name in (dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)):
                    os.lchown(name, uid, gid)

    def down(self, timeout: float = 20, log: Log | None = None) -> str:
        """Stop Asterisk (``core stop now``, then SIGTERM/SIGKILL by pid) and unmount /proc.

        Fine to call when nothing runs. Returns the message it also logs.
        """
        log = log or self._log
        pids = self._daemon_pids()
        if pids:
            _require_root("stop the Asterisk sandbox")
            try:
                subprocess.run(
                    ["chroot", str(self.root), ASTERISK_BIN, "-rx", "core stop now"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=min(10.0, timeout),
                )
            except (subprocess.TimeoutExpired, OSError):
                pass
            left = self._wait_gone(pids, timeout)
            for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                if not left:
                    break
                for pid in left:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                left = self._wait_gone(left, grace)
            if left:
                raise SandboxError(f"Asterisk pid(s) {left} did not exit, even after SIGKILL")
            message = f"asterisk sandbox: stopped (pid {', '.join(map(str, pids))})"
        else:
            message = "asterisk sandbox: was not running"
        # Stray processes still chrooted in (e.g. a hung `asterisk -rx`) keep /proc busy.
        if self.root.exists():
            for pid in processes_in_root(self.root):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self._proc_mounted():
            proc = str(self.root / "proc")
            if subprocess.run(["umount", proc], stderr=subprocess.DEVNULL, check=False).returncode != 0:
                subprocess.run(["umount", "-l", proc], check=False)
        self.pid_file.unlink(missing_ok=True)
        log(message)
        return message

    def _wait_gone(self, pids: Iterable[int], timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        left = list(pids)
        while left:
            if self._proc is not None and self._proc.pid in left:
                self._proc.poll()  # reap our own child so it does not linger as a zombie
            left = [p for p in left if pid_alive(p)]
            if not left or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        return left

    # -- prompts (callcore's own sounds; see callcore.prompts and docs/prompts.md)

    def install_prompts(self, src_dir: Path | None = None) -> list[str]:
        """Copy rendered prompts (``<lang>/...`` under ``src_dir``) into the chroot's sounds dir.

        ``src_dir`` defaults to ``self.sounds_dir``. Files land in
        ``/usr/share/asterisk/sounds/<lang>/...`` of the chroot (symlinks such as Debian's
        ``en`` → ``en_US_f_Allison`` are followed inside the chroot), mode 0644, so
        ``sound:callcore/welcome`` with language ``nl`` plays ``nl/callcore/welcome.wav``.
        Each ``<lang>/callcore`` directory ends up holding exactly the source's files.
        Works while Asterisk runs (it opens sound files per playback). Returns the
        relative paths that were new or changed.
        """
        src = Path(src_dir) if src_dir is not None else self.sounds_dir
        if not self.built:
            raise SandboxError("the Asterisk sandbox is not built yet: `callcore asterisk up` first")
        if not src.is_dir():
            raise SandboxError(f"no rendered prompts in {src}: run `python -m callcore.prompts render`")
        changed = install_sounds(src, self.root)
        self._log(
            f"asterisk sandbox: prompts from {src}: {len(changed)} file(s) installed or updated "
            f"in {SOUNDS_DIR_IN_ROOT}"
        )
        return changed

    def _prompts_on_up(self) -> None:
        """Render what changed (when espeak-ng and sox exist), then install; never fails ``up``."""
        from callcore import prompts

        try:
            if prompts.tools_available() and self.prompts_file.is_file():
                prompts.render_prompts(self.prompts_file, self.sounds_dir, log=self._log)
            elif not (self.sounds_dir.is_dir() and prompts.rendered_files(self.sounds_dir)):
                self._log(
                    "asterisk sandbox: note: callcore's prompts are not rendered and espeak-ng/sox are "
                    "missing (scripts/install-system-deps.sh): sound:callcore/... will not play"
                )
                return
            else:
                self._log("asterisk sandbox: note: espeak-ng/sox missing: installing the prompts rendered earlier")
            self.install_prompts()
        except (prompts.PromptError, SandboxError, OSError) as exc:
            self._log(f"asterisk sandbox: warning: prompts not installed: {exc}")

    # -- commands

    def cli(self, command: str, timeout: float = 30) -> str:
        """Run an Asterisk CLI command (``asterisk -rx``) in the running sandbox; returns its output."""
        if not self._daemon_pids():
            raise SandboxError("the Asterisk sandbox is not running: `callcore asterisk up` first")
        try:
            result = subprocess.run(
                ["chroot", str(self.root), ASTERISK_BIN, "-rx", command],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise SandboxError(f"asterisk -rx {command!r} did not return within {timeout:.0f} s") from None
        output = result.stdout.decode(errors="replace")
        if result.returncode != 0:
            raise SandboxError(
                f"asterisk -rx {command!r} failed (exit {result.returncode}): "
                + (result.stderr.decode(errors="replace") or output).strip()
            )
        return output


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise SandboxError(f"must run as root to {what} (it uses debootstrap, chroot and mount)")


def _port_of(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)
