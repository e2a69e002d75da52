from pathlib import Path

import pytest

from callcore.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "callcore.yaml"
    p.write_text(text)
    return p


def test_given_the_shipped_example_when_loaded_then_it_is_valid():
    from callcore import prompts

    # Every sound the example plays is one of callcore's prompts (or Asterisk's digits/numbers).
    config = load_config(REPO / "config" / "callcore.yaml", known_sounds=prompts.prompt_names())
    assert config.inbound.dids["1000"] == "telco" and config.inbound.default_flow == "telco"
    assert set(config.flows) == {"telco", "survey"} and "office" in config.schedules  # survey: post-call CSAT
    assert config.state_dir == (REPO / ".state").resolve()
    assert len(config.version) == 12 and config.warnings == []


def test_given_several_errors_when_loaded_then_each_names_its_yaml_path_and_line(tmp_path):
    path = write(tmp_path, """\
ari:
  url: ftp://nowhere
  password: x
  heartbeat: -1
event_store:
  batch_max: many
logging:
  colour: red
""")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    found = {(i.path, i.line) for i in err.value.issues}
    assert ("ari.url", 2) in found
    assert ("ari.heartbeat", 4) in found
    assert ("event_store.batch_max", 6) in found
    assert ("logging.colour", 8) in found  # unknown keys are errors, not silently ignored
    assert str(path) + ":2: ari.url" in str(err.value)


def test_given_an_unknown_flow_when_loaded_then_the_did_line_is_reported(tmp_path):
    path = write(tmp_path, "ari: {password: x}\ninbound:\n  dids:\n    '1000': nope\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, known_flows={"say_digit"})
    (issue,) = err.value.issues
    assert issue.line == 4 and "unknown flow 'nope'" in issue.message


def test_given_a_duplicate_key_when_loaded_then_it_is_an_error(tmp_path):
    path = write(tmp_path, "ari:\n  password: a\n  password: b\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.issues[0].line == 3 and "duplicate" in err.value.issues[0].message


def test_given_bad_yaml_syntax_when_loaded_then_the_line_is_reported(tmp_path):
    path = write(tmp_path, "ari:\n  url: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.issues[0].line is not None and "syntax" in err.value.issues[0].message


def test_given_secrets_in_the_environment_when_loaded_then_they_win(tmp_path, monkeypatch):
    path = write(tmp_path, "ari: {password: from-file}\n")
    monkeypatch.setenv("CALLCORE_ARI_PASSWORD", "from-env")
    monkeypatch.setenv("CALLCORE_DATABASE_URL", "postgresql://u@127.0.0.1/db")
    config = load_config(path)
    assert config.ari.password.get_secret_value() == "from-env"
    assert config.database.url.get_secret_value() == "postgresql://u@127.0.0.1/db"
    assert "from-env" not in repr(config)


def test_given_no_password_anywhere_when_loaded_then_the_error_says_how_to_set_it(tmp_path, monkeypatch):
    monkeypatch.delenv("CALLCORE_ARI_PASSWORD", raising=False)
    path = write(tmp_path, "ari: {url: 'http://127.0.0.1:8088'}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "CALLCORE_ARI_PASSWORD" in str(err.value)


def test_given_check_config_cli_when_file_is_bad_then_exit_code_is_nonzero_and_lines_printed(tmp_path, capsys):
    from callcore.cli import main

    path = write(tmp_path, "ari:\n  url: nope\n  password: x\n")
    assert main(["check-config", str(path)]) == 1
    assert f"{path}:2: ari.url" in capsys.readouterr().err
    assert main(["check-config", str(REPO / "config" / "callcore.yaml")]) == 0
