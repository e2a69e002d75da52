"""install.sh's secrets and Asterisk configuration, run for real under --destdir (no root, no side effects): strong
passwords generated once, private modes, never printed, never overwritten; callcore's Asterisk files installed
explicitly and idempotently (--asterisk-config)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from callcore.ops.secrets import read_secret_file

REPO = Path(__file__).resolve().parents[3]
INSTALL = REPO / "deploy" / "install.sh"
SECRET = re.compile(r"^[A-Za-z0-9_-]{43}$")  # 32 random bytes, URL-safe base64


def install(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCORE_")}
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=120, env=env)


def stage(root: Path, *extra: str) -> str:
    proc = install("--config-only", "--destdir", str(root), *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def crypt_matches(hashed: str, password: str) -> bool:
    """A SHA-512 crypt hash ($6$salt$...) of password? (openssl recomputes it with the same salt.)"""
    salt = hashed.split("$")[2]
    again = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=password,
                           capture_output=True, text=True, check=True)
    return again.stdout.strip() == hashed


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def agent_passwords(path: Path) -> dict[str, str]:
    text = path.read_text()
    return dict(re.findall(r"^username = (agent\d\d)\npassword = (\S+)$", text, re.M))


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    stock = tmp_path / "root" / "etc" / "asterisk"
    stock.mkdir(parents=True)
    (stock / "sip.conf").write_text("; Debian's sample\n")  # what a fresh Asterisk package leaves there
    return tmp_path / "root"


def test_first_install_generates_private_secrets_and_prints_none(root: Path):
    out = stage(root, "--asterisk-config")
    etc, ast = root / "etc" / "callcore", root / "etc" / "asterisk"

    password = read_secret_file(etc / "ari-password")  # what callcore reads: refuses anything but 0600/0400
    assert SECRET.match(password) and mode(etc / "ari-password") == 0o600
    env = (etc / "env").read_text()
    assert mode(etc / "env") == 0o600
    assert "CALLCORE_ARI_PASSWORD_FILE=/etc/callcore/ari-password" in env.splitlines()
    assert password not in env and not re.search(r"^CALLCORE_ARI_PASSWORD=", env, re.M)
    assert mode(etc / "admin-token") == 0o600 and mode(etc / "asterisk-ari.conf") == 0o600

    # Asterisk: the stock files moved aside once, callcore's in their place
    assert (root / "etc" / "asterisk.dist" / "sip.conf").is_file() and not (ast / "sip.conf").exists()
    assert (ast / ".callcore").is_file()
    for src in (REPO / "asterisk").glob("*.conf"):
        assert mode(ast / src.name) == 0o640, src.name
        if src.name not in ("ari.conf", "pjsip_auth.conf"):
            assert (ast / src.name).read_bytes() == src.read_bytes(), src.name

    # ari.conf: only a crypt hash of callcore's password, the sandbox's gone, the rest as shipped
    ari = (ast / "ari.conf").read_text()
    assert "password = callcore-sandbox" not in ari and password not in ari
    (hashed,) = re.findall(r"^password = (\S+)$", ari, re.M)
    if shutil.which("openssl"):
        assert re.findall(r"^password_format = (\S+)$", ari, re.M) == ["crypt"]
        assert crypt_matches(hashed, password), "the hash in ari.conf is not the ARI password's"
        (snippet,) = re.findall(r"^password = (\S+)$", (etc / "asterisk-ari.conf").read_text(), re.M)
        assert crypt_matches(snippet, password), "asterisk-ari.conf holds another password"
    shipped = [line for line in (REPO / "asterisk" / "ari.conf").read_text().splitlines()
               if not line.startswith("password")]
    assert [line for line in ari.splitlines() if not line.startswith("password")] == shipped

    # pjsip_auth.conf: a different strong password per phone, the structure as shipped
    phones = agent_passwords(ast / "pjsip_auth.conf")
    assert sorted(phones) == [f"agent{n:02d}" for n in range(1, 21)]
    assert all(SECRET.match(p) for p in phones.values()) and len(set(phones.values())) == 20
    strip = re.compile(r"^password = .*$", re.M)
    assert strip.sub("", (ast / "pjsip_auth.conf").read_text()) == \
        strip.sub("", (REPO / "asterisk" / "pjsip_auth.conf").read_text())

    for secret in [password, hashed, *phones.values(), (etc / "admin-token").read_text().strip()]:
        assert secret not in out
    assert not re.search(r"[A-Za-z0-9_-]{43}", out)


def test_a_second_run_keeps_every_secret_and_never_overwrites_your_changes(root: Path):
    stage(root, "--asterisk-config")
    etc, ast = root / "etc" / "callcore", root / "etc" / "asterisk"
    secrets = {p: p.read_bytes() for p in (etc / "ari-password", etc / "env", etc / "admin-token",
                                           ast / "ari.conf", ast / "pjsip_auth.conf")}
    (ast / "acl.conf").write_text("; acl.conf — mine\n[callcore-carrier]\ndeny = 0.0.0.0/0\npermit = 192.0.2.10\n")
    (ast / "rtp.conf").unlink()

    out = stage(root, "--asterisk-config")
    assert {p: p.read_bytes() for p in secrets} == secrets
    assert "ari-password exists (kept)" in out and "pjsip_auth.conf holds secrets (kept)" in out
    assert "permit = 192.0.2.10" in (ast / "acl.conf").read_text(), "the operator's acl.conf was overwritten"
    assert (ast / "acl.conf.callcore-new").read_bytes() == (REPO / "asterisk" / "acl.conf").read_bytes()
    assert "acl.conf" in out.split("NOTE:", 1)[1]
    assert (ast / "rtp.conf").read_bytes() == (REPO / "asterisk" / "rtp.conf").read_bytes()  # a missing file returns
    assert not (root / "etc" / "asterisk.before-callcore").exists()
    assert [p.name for p in root.joinpath("etc").iterdir() if p.name.startswith("asterisk.")] == ["asterisk.dist"]
    assert "is current" in out


def test_an_upgrade_keeps_a_password_that_lives_in_env(root: Path):
    etc = root / "etc" / "callcore"
    etc.mkdir(parents=True)
    (etc / "env").write_text("CALLCORE_ARI_PASSWORD=an-older-install-password\n")
    os.chmod(etc / "env", 0o600)
    out = stage(root, "--asterisk-config")
    assert not (etc / "ari-password").exists() and not (etc / "asterisk-ari.conf").exists()
    assert (etc / "env").read_text() == "CALLCORE_ARI_PASSWORD=an-older-install-password\n"
    assert "CALLCORE_ARI_PASSWORD in /etc/callcore/env (kept)" in out
    ari = (root / "etc" / "asterisk" / "ari.conf").read_text()  # Asterisk gets that same password, hashed
    assert "an-older-install-password" not in ari and "an-older-install-password" not in out
    if shutil.which("openssl"):
        (hashed,) = re.findall(r"^password = (\S+)$", ari, re.M)
        assert crypt_matches(hashed, "an-older-install-password")


def test_without_asterisk_config_etc_asterisk_is_never_touched(root: Path):
    out = stage(root)
    assert sorted(p.name for p in (root / "etc" / "asterisk").iterdir()) == ["sip.conf"]
    assert not (root / "etc" / "asterisk.dist").exists() and "/etc/asterisk (--asterisk-config" not in out
    assert (root / "etc" / "callcore" / "asterisk-ari.conf").is_file()  # the ARI user, for the operator to paste


def test_destdir_is_only_for_the_configuration_steps(tmp_path: Path):
    proc = install("--destdir", str(tmp_path))
    assert proc.returncode == 2 and "--destdir needs --config-only" in proc.stderr
    proc = install("--config-only", "--destdir", "relative/dir")
    assert proc.returncode == 2 and "absolute" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_dry_run_with_asterisk_config_lists_the_files_and_writes_nothing(tmp_path: Path):
    proc = install("--dry-run", "--config-only", "--asterisk-config")
    assert proc.returncode == 0, proc.stderr
    for name in ("acl.conf", "pjsip.conf", "pjsip_auth.conf", "ari.conf"):
        assert f"/etc/asterisk/{name}" in proc.stdout, name
    assert not re.search(r"[A-Za-z0-9_-]{43}", proc.stdout)
