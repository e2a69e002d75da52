"""The Asterisk sandbox's logic that needs no root and no Asterisk: paths, config
install, pid and mount bookkeeping, error messages — and sanity of asterisk/ itself."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from callcore.sandbox import AsteriskSandbox, SandboxError, SandboxStatus, default_cache_dir, default_config_dir
from callcore.sandbox import asterisk as sb


# ---------------------------------------------------------------- paths


def test_cache_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CALLCORE_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("CALLCORE_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "callcore"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "callcore"


def test_sandbox_paths(tmp_path: Path) -> None:
    s = AsteriskSandbox(cache_dir=tmp_path, log=None)
    assert s.config_dir == default_config_dir()
    assert s.root == tmp_path / "asterisk-root"
    assert s.partial_root == tmp_path / "asterisk-root.partial"
    assert s.pid_file == tmp_path / "asterisk.pid"
    assert s.log_path == s.root / "var/log/asterisk/messages.log"
    assert s.etc_dir == s.root / "etc/asterisk"
    assert not s.built


def test_default_config_dir_is_the_repos() -> None:
    assert (default_config_dir() / "pjsip.conf").is_file()


# ---------------------------------------------------------------- config install


def _files(d: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in d.iterdir()}


def test_install_config_moves_stock_aside_once_and_replaces(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.conf").write_text("a1")
    (repo / "b.conf").write_text("b1")
    (repo / ".hidden").write_text("x")
    etc = tmp_path / "root/etc/asterisk"
    etc.mkdir(parents=True)
    (etc / "stock.conf").write_text("stock")

    assert sb.install_config(repo, etc) == ["a.conf", "b.conf"]
    assert _files(etc) == {"a.conf": "a1", "b.conf": "b1"}
    assert _files(etc.with_name("asterisk.dist")) == {"stock.conf": "stock"}
    assert oct(etc.stat().st_mode & 0o777) == "0o755"
    assert oct((etc / "a.conf").stat().st_mode & 0o777) == "0o644"

    # second install: a removed file disappears, .dist keeps the stock files
    (repo / "b.conf").unlink()
    (repo / "a.conf").write_text("a2")
    assert sb.config_differs(repo, etc) == ["a.conf", "b.conf"]
    sb.install_config(repo, etc)
    assert _files(etc) == {"a.conf": "a2"}
    assert _files(etc.with_name("asterisk.dist")) == {"stock.conf": "stock"}
    assert sb.config_differs(repo, etc) == []
    assert not etc.with_name("asterisk.new").exists() and not etc.with_name("asterisk.old").exists()


def test_install_config_refuses_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SandboxError, match="no Asterisk configuration"):
        sb.install_config(tmp_path / "empty", tmp_path / "etc")


# ---------------------------------------------------------------- pids and mounts


def test_read_pid_file(tmp_path: Path) -> None:
    f = tmp_path / "pid"
    assert sb.read_pid_file(f) is None
    f.write_text("1234\n")
    assert sb.read_pid_file(f) == 1234
    for junk in ("", "abc", "-5", "0"):
        f.write_text(junk)
        assert sb.read_pid_file(f) is None


def test_pid_alive() -> None:
    assert sb.pid_alive(os.getpid())
    assert not sb.pid_alive(2**22 + 12345)  # above the kernel's pid_max default


def test_processes_in_root_reads_proc_root_links(tmp_path: Path) -> None:
    fake_proc = tmp_path / "proc"
    chroot = tmp_path / "chroot"
    chroot.mkdir()
    me = fake_proc / str(os.getpid())
    me.mkdir(parents=True)
    (me / "root").symlink_to(chroot)
    other = fake_proc / "999999999"
    other.mkdir()
    (other / "root").symlink_to("/")
    (fake_proc / "self").mkdir()
    assert sb.processes_in_root(chroot, proc=fake_proc) == [os.getpid()]
    assert sb.processes_in_root(tmp_path / "elsewhere", proc=fake_proc) == []


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
90 22 0:5 / /root/.cache/callcore/asterisk-root/proc rw,relatime - proc proc rw
91 22 0:6 / /tmp/with\\040space/proc rw - proc proc rw
92 22 0:7 / /root/.cache/callcore/asterisk-root-other/proc rw - proc proc rw
"""


def test_mount_points_and_mounts_under() -> None:
    points = sb.mount_points(MOUNTINFO)
    assert "/tmp/with space/proc" in points
    under = sb.mounts_under(Path("/root/.cache/callcore/asterisk-root"), MOUNTINFO)
    assert under == ["/root/.cache/callcore/asterisk-root/proc"], "a sibling with the same prefix is not inside"


# ---------------------------------------------------------------- behaviour without root / without a tree


def test_status_when_nothing_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = AsteriskSandbox(cache_dir=tmp_path, ari_url="http://127.0.0.1:9", log=None)
    st = s.status()
    assert isinstance(st, SandboxStatus)
    assert (st.built, st.running, st.pid, st.ari_ok) == (False, False, None, False)
    assert "not built" in str(st) and str(s.log_path) in str(st)


def test_status_ignores_stale_pid_file(tmp_path: Path) -> None:
    s = AsteriskSandbox(cache_dir=tmp_path, ari_url="http://127.0.0.1:9", log=None)
    s.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not an Asterisk in our chroot
    assert not s.status().running


def test_down_when_not_running_is_fine(tmp_path: Path) -> None:
    messages: list[str] = []
    s = AsteriskSandbox(cache_dir=tmp_path, ari_url="http://127.0.0.1:9", log=messages.append)
    s.pid_file.write_text("999999999\n")
    assert s.down() == "asterisk sandbox: was not running"
    assert messages == ["asterisk sandbox: was not running"]
    assert not s.pid_file.exists()


def test_cli_when_not_running(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="not running"):
        AsteriskSandbox(cache_dir=tmp_path, log=None).cli("core show version")


def test_up_requires_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sb.os, "geteuid", lambda: 1000)
    with pytest.raises(SandboxError, match="must run as root"):
        AsteriskSandbox(cache_dir=tmp_path, log=None).up()


def test_build_without_debootstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sb.os, "geteuid", lambda: 0)
    monkeypatch.setattr(sb.shutil, "which", lambda name: None)
    with pytest.raises(SandboxError, match="install-system-deps"):
        AsteriskSandbox(cache_dir=tmp_path, log=None).build()


def test_build_finishes_a_complete_partial_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sb.os, "geteuid", lambda: 0)
    monkeypatch.setattr(sb.subprocess, "run", lambda *a, **k: pytest.fail("must not run debootstrap"))
    s = AsteriskSandbox(cache_dir=tmp_path, log=None)
    binary = s.partial_root / "usr/sbin/asterisk"
    binary.parent.mkdir(parents=True)
    binary.write_text("")
    s.build()
    assert s.built and not s.partial_root.exists()
    s.build()  # reused as it is


def test_unfinished_partial_is_not_taken(tmp_path: Path) -> None:
    s = AsteriskSandbox(cache_dir=tmp_path, log=None)
    (s.partial_root / "usr/sbin").mkdir(parents=True)
    (s.partial_root / "usr/sbin/asterisk").write_text("")
    (s.partial_root / "debootstrap").mkdir()  # debootstrap's work dir: still running or failed
    assert not s._partial_finished()


# ---------------------------------------------------------------- asterisk/ itself


CONF = default_config_dir()


def _settings(name: str) -> str:
    return "\n".join(line.split(";", 1)[0] for line in (CONF / name).read_text().splitlines())


def test_every_config_file_explains_itself() -> None:
    for path in (p for p in CONF.rglob("*") if p.is_file()):
        assert path.read_text().startswith(f"; {path.name} — "), path


def test_everything_binds_to_loopback() -> None:
    assert re.search(r"^bindaddr\s*=\s*127\.0\.0\.1$", _settings("http.conf"), re.M)
    assert re.search(r"^bind\s*=\s*127\.0\.0\.1:5060$", _settings("pjsip_node.conf"), re.M)
    assert "#include pjsip_node.conf" in _settings("pjsip.conf")
    assert re.search(r"^enabled\s*=\s*no$", _settings("manager.conf"), re.M)
    node_b = CONF / "nodes" / "b"
    assert re.search(r"^bind\s*=\s*127\.0\.0\.1:5070$", (node_b / "pjsip_node.conf").read_text(), re.M)
    assert re.search(r"^bindaddr\s*=\s*127\.0\.0\.1$", (node_b / "http.conf").read_text(), re.M)


def test_a_second_node_gets_the_repo_config_with_its_own_files_over_it(tmp_path: Path) -> None:
    from callcore.sandbox.asterisk import AsteriskSandbox, config_files

    files = config_files(CONF, "b")
    assert files["extensions.conf"] == CONF / "extensions.conf"
    assert files["pjsip_node.conf"] == CONF / "nodes" / "b" / "pjsip_node.conf"
    assert files["http.conf"] == CONF / "nodes" / "b" / "http.conf"
    assert "nodes" not in config_files(CONF)  # the first node never installs the directory itself
    node = AsteriskSandbox.for_node("b", cache_dir=tmp_path, log=None)
    assert node.ari_url == "http://127.0.0.1:8089"
    assert node.root == tmp_path / "asterisk-root-b" and node.pid_file == tmp_path / "asterisk-b.pid"


def test_no_answer_before_stasis_for_inbound() -> None:
    dialplan = _settings("extensions.conf")
    inbound = dialplan.split("[from-trunk]", 1)[1].split("\n[", 1)[0]
    assert "Stasis(callcore,inbound,${EXTEN})" in inbound
    assert "Answer(" not in inbound
    assert "Stasis(callcore,outbound,${AMDSTATUS},${AMDCAUSE})" in dialplan


def test_twenty_agents_with_their_ports() -> None:
    pjsip = _settings("pjsip.conf")
    for n in range(1, 21):
        assert f"contact = sip:agent{n:02d}@127.0.0.1:{6100 + n}" in pjsip
    assert "contact = sip:127.0.0.1:5080" in pjsip


def test_modules_explicit() -> None:
    modules = _settings("modules.conf")
    assert re.search(r"^autoload\s*=\s*no$", modules, re.M)
    for mod in ("chan_pjsip", "res_ari", "app_stasis", "res_ari_channels", "app_amd", "app_queue", "res_http_websocket"):
        assert f"load => {mod}.so" in modules
