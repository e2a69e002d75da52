"""Secrets from files: CALLCORE_ARI_PASSWORD_FILE / CALLCORE_DATABASE_URL_FILE, refused when others may read them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from callcore.config import ConfigError, load_config
from callcore.ops.config import RetentionSettings
from callcore.ops.secrets import SecretFileError, read_secret_file, write_secret_file

SECRET = "s3cret-ari-Pa55word"
ENV_VARS = ("CALLCORE_ARI_PASSWORD", "CALLCORE_ARI_PASSWORD_FILE", "CALLCORE_DATABASE_URL",
            "CALLCORE_DATABASE_URL_FILE", "CALLCORE_ARI_URL", "CALLCORE_API_PORT")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def secret_file(tmp_path: Path, text: str, mode: int = 0o600, name: str = "secret") -> Path:
    p = tmp_path / name
    p.write_text(text)
    os.chmod(p, mode)
    return p


def config_file(tmp_path: Path, text: str = "state_dir: state\n") -> Path:
    p = tmp_path / "callcore.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_a_private_file_is_read_without_its_trailing_newline(tmp_path, mode):
    assert read_secret_file(secret_file(tmp_path, SECRET + "\n", mode)) == SECRET


@pytest.mark.parametrize("mode,who", [(0o640, "its group"), (0o604, "others"), (0o644, "its group and others"),
                                      (0o620, "its group"), (0o666, "its group and others")])
def test_a_file_others_may_access_is_refused_with_the_fix_and_without_the_secret(tmp_path, mode, who):
    path = secret_file(tmp_path, SECRET, mode)
    with pytest.raises(SecretFileError) as err:
        read_secret_file(path)
    message = str(err.value)
    assert f"mode {mode:04o} lets {who} access a secret" in message
    assert f"chmod 600 {path}" in message
    assert SECRET not in message


def test_missing_empty_and_directory_files_are_refused(tmp_path):
    with pytest.raises(SecretFileError, match="no such file"):
        read_secret_file(tmp_path / "nope")
    with pytest.raises(SecretFileError, match="empty"):
        read_secret_file(secret_file(tmp_path, "\n"))
    d = tmp_path / "dir"
    d.mkdir(mode=0o700)
    with pytest.raises(SecretFileError, match="not a regular file"):
        read_secret_file(d)


def test_a_symlink_to_a_private_file_is_followed(tmp_path):
    target = secret_file(tmp_path, SECRET)
    link = tmp_path / "link"
    link.symlink_to(target)  # how Kubernetes mounts secrets
    assert read_secret_file(link) == SECRET


def test_write_secret_file_creates_0600_and_never_overwrites(tmp_path):
    path = tmp_path / "salt"
    write_secret_file(path, "abc")
    assert path.stat().st_mode & 0o777 == 0o600 and read_secret_file(path) == "abc"
    with pytest.raises(FileExistsError):
        write_secret_file(path, "other")


def test_load_config_takes_the_ari_password_and_database_url_from_files(tmp_path, monkeypatch):
    pw = secret_file(tmp_path, SECRET + "\n", name="ari-password")
    url = secret_file(tmp_path, "postgresql://callcore:pw@db.example/callcore\n", 0o400, name="database-url")
    monkeypatch.setenv("CALLCORE_ARI_PASSWORD_FILE", str(pw))
    monkeypatch.setenv("CALLCORE_DATABASE_URL_FILE", str(url))
    config = load_config(config_file(tmp_path))
    assert config.ari.password.get_secret_value() == SECRET
    assert config.database.url is not None
    assert config.database.url.get_secret_value() == "postgresql://callcore:pw@db.example/callcore"
    assert SECRET not in repr(config) and "pw@db" not in repr(config)


def test_load_config_refuses_a_readable_secret_file_naming_the_variable(tmp_path, monkeypatch):
    pw = secret_file(tmp_path, SECRET, 0o644)
    monkeypatch.setenv("CALLCORE_ARI_PASSWORD_FILE", str(pw))
    with pytest.raises(ConfigError) as err:
        load_config(config_file(tmp_path))
    (issue,) = err.value.issues
    assert issue.path == "ari.password"
    assert issue.message.startswith("CALLCORE_ARI_PASSWORD_FILE: ") and "chmod 600" in issue.message
    assert SECRET not in str(err.value)


def test_load_config_refuses_a_variable_and_its_file_together(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLCORE_DATABASE_URL", "postgresql://x@y/z")
    monkeypatch.setenv("CALLCORE_DATABASE_URL_FILE", str(secret_file(tmp_path, "postgresql://a@b/c")))
    monkeypatch.setenv("CALLCORE_ARI_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError) as err:
        load_config(config_file(tmp_path))
    messages = {i.path: i.message for i in err.value.issues}
    assert "both CALLCORE_DATABASE_URL and CALLCORE_DATABASE_URL_FILE are set" in messages["database.url"]
    assert "no such file" in messages["ari.password"]


def test_the_plain_environment_variable_still_works(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLCORE_ARI_PASSWORD", SECRET)
    assert load_config(config_file(tmp_path)).ari.password.get_secret_value() == SECRET


def test_the_retention_section_is_validated_with_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLCORE_ARI_PASSWORD", SECRET)
    config = load_config(config_file(tmp_path, "retention:\n  recordings_days: 90\n  call_events_days: 365\n"
                                               "  personal_variables: [customer_name]\n"))
    assert config.retention == RetentionSettings(recordings_days=90, call_events_days=365,
                                                 personal_variables=["customer_name"])
    with pytest.raises(ConfigError) as err:
        load_config(config_file(tmp_path, "retention:\n  recordings_days: 400\n  call_events_days: 365\n"
                                          "  colour: red\n"))
    text = str(err.value)
    assert "recordings_days (400) may not exceed call_events_days (365)" in text or "colour" in text
    assert any(i.path.startswith("retention") for i in err.value.issues)


def test_retention_limits_must_be_ordered_and_variables_named():
    with pytest.raises(ValueError, match="personal_data_days"):
        RetentionSettings(personal_data_days=800, call_events_days=730)
    with pytest.raises(ValueError, match="not variable names"):
        RetentionSettings(personal_variables=["ok", "not ok"])
    assert not RetentionSettings().enabled and RetentionSettings(agent_events_days=30).enabled
