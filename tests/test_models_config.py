"""models.toml and the keys file: models add/list/default/remove/key."""

from __future__ import annotations

import json
import tomllib

import pytest
from helpers import assert_one_line_error as assert_one_error

from localfirst import paths
from localfirst.errors import ConfigError
from localfirst.models import default_model_name, get_model
from localfirst.models.config import ModelConfig, load_config, resolve_key


def config_text() -> str:
    path = paths.home() / "models.toml"
    return path.read_text() if path.exists() else ""


def test_add_list_default_remove(run):
    r = run("models", "add", "local", "--base-url", "http://localhost:11434/v1/", "--model", "llama3.2",
            "--header", "X-A", "1", "--timeout", "600")
    assert r.code == 0, r.err
    r = run("models", "add", "gpt", "--base-url", "https://api.openai.com/v1", "--model", "gpt-4o-mini",
            "--api-key-env", "OPENAI_API_KEY", "--default")
    assert r.out.strip() == "Added model gpt (default)"
    doc = tomllib.loads(config_text())
    assert doc == {"default": "gpt", "models": {
        "gpt": {"base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"},
        "local": {"base_url": "http://localhost:11434/v1", "model": "llama3.2", "headers": {"X-A": "1"},
                  "timeout": 600.0},
    }}
    listed = run("models", "list").out.splitlines()
    assert listed[1].split() == ["echo", "(built", "in,", "offline)"]
    assert listed[2].split()[:4] == ["*", "gpt", "gpt-4o-mini", "$OPENAI_API_KEY"]
    assert json.loads(run("models", "list", "--json").out)[1]["key"] == "none"
    assert run("models", "default").out.strip() == "gpt"
    assert run("models", "default", "local").out.strip() == "local"
    assert default_model_name() == "local"
    assert run("models", "remove", "local").code == 0
    assert default_model_name() == "echo"
    assert run("models", "default", "echo").out.strip() == "echo"
    assert list(load_config().models) == ["gpt"]


def test_prompt_without_m_uses_the_default_then_echo(run):
    assert run("prompt", "hi").out == "hi\n"
    run("models", "add", "x", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--default")
    assert_one_error(run("prompt", "hi"), "model 'x'")


@pytest.mark.parametrize(("args", "fragment"), [
    (["echo", "--base-url", "http://x/v1", "--model", "m"], "built-in"),
    (["bad name", "--base-url", "http://x/v1", "--model", "m"], "may use letters"),
    (["ok", "--base-url", "localhost:11434", "--model", "m"], "must start with http"),
    (["ok", "--base-url", "http://x/v1", "--model", "m", "--api-key-env", "NOT-A-VAR"], "not an environment"),
    (["ok", "--base-url", "http://x/v1", "--model", "m", "--timeout", "0"], "more than 0"),
])
def test_add_mistakes_change_nothing(run, args, fragment):
    run("models", "add", "kept", "--base-url", "http://x/v1", "--model", "m")
    before = config_text()
    assert_one_error(run("models", "add", *args), fragment)
    assert config_text() == before


def test_unknown_names(run):
    assert_one_error(run("models", "remove", "nope"), "no configured model 'nope'")
    assert_one_error(run("models", "default", "nope"), "no model 'nope'")
    assert_one_error(run("models", "key", "nope", input="sk-1"), "no configured model 'nope'")
    assert get_model("echo").name == "echo"


def test_bad_toml_is_one_error(run):
    (paths.home() / "models.toml").write_text("default = [unclosed\n")
    assert_one_error(run("models", "list"), "models.toml is not valid TOML")
    assert_one_error(run("prompt", "hi"), "not valid TOML")
    (paths.home() / "models.toml").write_text('[models.a]\nbase_url = "http://x"\n')
    assert_one_error(run("models", "list"), "needs base_url and model")


def test_keys_file_is_private_and_checked(run):
    run("models", "add", "a", "--base-url", "http://x/v1", "--model", "m")
    assert run("models", "key", "a", input="sk-aaa\n").code == 0
    keys = paths.home() / "keys.json"
    assert keys.stat().st_mode & 0o777 == 0o600
    assert json.loads(keys.read_text()) == {"a": "sk-aaa"}
    assert resolve_key(load_config().models["a"]) == "sk-aaa"
    keys.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        resolve_key(load_config().models["a"])
    keys.write_text('{"a": "sk-leaky-secret"')  # broken JSON must not be quoted back
    keys.chmod(0o600)
    r = run("models", "list")
    assert_one_error(r, "cannot be read as a JSON object")
    assert "sk-leaky" not in r.err
    keys.write_text('{"a": "sk-aaa"}')
    assert run("models", "remove", "a").code == 0
    assert json.loads(keys.read_text()) == {}
    assert_one_error(run("models", "key", "a", input=""), "no configured model")


def test_env_key_wins_and_an_unset_variable_is_an_error(monkeypatch):
    config = ModelConfig("a", "http://x/v1", "m", api_key_env="A_KEY")
    monkeypatch.setenv("A_KEY", " sk-env \n")
    assert resolve_key(config) == "sk-env"
    monkeypatch.delenv("A_KEY")
    with pytest.raises(ConfigError, match=r"\$A_KEY, which is not set"):
        resolve_key(config)
    assert resolve_key(ModelConfig("b", "http://x/v1", "m")) is None
