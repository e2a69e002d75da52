"""Secrets from files: ``CALLCORE_ARI_PASSWORD_FILE``, ``CALLCORE_DATABASE_URL_FILE`` (and ``CALLCORE_API_TOKEN_FILE``
for the command line).

A file holding a secret must be a regular file that neither its group nor anybody else may read or write
(mode 0600 or 0400; systemd's ``LoadCredential=`` gives 0400, a Kubernetes secret volume needs
``defaultMode: 0400``). Anything looser is refused with the path, the mode and the fix; the secret itself never
appears in an error, a log line or ``repr``. One trailing newline (``echo`` writes one) is dropped.

Setting both the variable and its ``_FILE`` twin is an error: which one wins would be a guess.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from pydantic import SecretStr

# (environment variable, attribute of EnvOverrides, YAML path it stands for)
SECRET_FILES = (
    ("CALLCORE_ARI_PASSWORD", "ari_password", "ari.password"),
    ("CALLCORE_DATABASE_URL", "database_url", "database.url"),
)


class SecretFileError(ValueError):
    """A secret file is missing, not a regular file, readable by others, or empty (the message says which)."""


def check_secret_file(path: Path) -> os.stat_result:
    """The file's stat if it may hold a secret; else :class:`SecretFileError`."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SecretFileError(f"{path}: no such file") from None
    except PermissionError:
        raise SecretFileError(f"{path}: permission denied (is it readable by user uid {os.geteuid()}?)") from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretFileError(f"{path}: not a regular file")
    loose = st.st_mode & 0o077
    if loose:
        who = " and ".join(w for w, bits in (("its group", 0o070), ("others", 0o007)) if loose & bits)
        raise SecretFileError(
            f"{path}: mode {stat.S_IMODE(st.st_mode):04o} lets {who} access a secret; "
            f"run `chmod 600 {path}` (owner: the user callcore runs as)")
    return st


def read_secret_file(path: Path | str) -> str:
    """The secret in ``path`` (one trailing newline removed), after :func:`check_secret_file`."""
    path = Path(path)
    check_secret_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretFileError(f"{path}: cannot be read: {type(exc).__name__}") from None
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    if not text.strip():
        raise SecretFileError(f"{path}: empty")
    return text


def apply_secret_files(env: Any, file: str) -> None:
    """Fill ``env``'s secrets (an :class:`~callcore.config.models.EnvOverrides`) from their ``_FILE`` variables.

    Raises :class:`~callcore.config.ConfigError` listing every problem (reported against ``file``, the config)."""
    from callcore.config.loader import ConfigError, ConfigIssue

    issues: list[ConfigIssue] = []
    for var, attr, yaml_path in SECRET_FILES:
        path = getattr(env, f"{attr}_file", None)
        if path is None:
            continue
        if getattr(env, attr, None) is not None:
            issues.append(ConfigIssue(file, None, yaml_path, f"both {var} and {var}_FILE are set: keep one"))
            continue
        try:
            setattr(env, attr, SecretStr(read_secret_file(path)))
        except SecretFileError as exc:
            issues.append(ConfigIssue(file, None, yaml_path, f"{var}_FILE: {exc}"))
    if issues:
        raise ConfigError(issues)


def write_secret_file(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 holding ``text`` (it must not exist: never overwrite a secret)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text + "\n")


__all__ = ["SECRET_FILES", "SecretFileError", "apply_secret_files", "check_secret_file", "read_secret_file",
           "write_secret_file"]
