"""Configured models and their API keys, kept in the home directory.

``models.toml`` names each model server and which model id to ask it for::

    default = "gpt"

    [models.gpt]
    base_url = "https://api.openai.com/v1"
    model = "gpt-4o-mini"
    api_key_env = "OPENAI_API_KEY"

A key comes from the environment variable the model names, or else from
``keys.json`` (created with mode 0600, refused when others can read it). A key
is never written to the configuration, the database or any message.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import BadInput, ConfigError, NotFound

__all__ = [
    "ModelConfig", "ModelsConfig", "config_path", "keys_path", "load_config", "save_config",
    "add_model", "remove_model", "set_default", "set_key", "resolve_key", "key_source",
]

BUILTIN_NAMES = ("echo",)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class ModelConfig:
    """One model: a server (``base_url``), the model id it knows, and how to authenticate."""

    name: str
    base_url: str
    model: str
    api_key_env: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None

    def to_toml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"base_url": self.base_url, "model": self.model}
        if self.api_key_env:
            out["api_key_env"] = self.api_key_env
        if self.headers:
            out["headers"] = dict(self.headers)
        if self.timeout is not None:
            out["timeout"] = self.timeout
        return out

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.to_toml(), "key": key_source(self)}


@dataclass
class ModelsConfig:
    default: str | None = None
    models: dict[str, ModelConfig] = field(default_factory=dict)


def config_path() -> Path:
    return paths.home() / "models.toml"


def keys_path() -> Path:
    return paths.home() / "keys.json"


def _model_from(name: str, data: Any, where: str) -> ModelConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: [models.{name}] must be a table")
    base_url, model = data.get("base_url"), data.get("model")
    if not isinstance(base_url, str) or not isinstance(model, str):
        raise ConfigError(f"{where}: model {name!r} needs base_url and model strings")
    env = data.get("api_key_env")
    headers = data.get("headers", {})
    timeout = data.get("timeout")
    if env is not None and not isinstance(env, str):
        raise ConfigError(f"{where}: model {name!r}: api_key_env must be a string")
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ConfigError(f"{where}: model {name!r}: headers must be a table of strings")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
        raise ConfigError(f"{where}: model {name!r}: timeout must be a number of seconds")
    return ModelConfig(name, base_url, model, env, dict(headers), None if timeout is None else float(timeout))


def load_config() -> ModelsConfig:
    """The configured models; an empty configuration when there is no file."""
    path = config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ModelsConfig()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    import tomllib

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise ConfigError(f"{path}: models must be a table")
    default = data.get("default")
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"{path}: default must be a model name")
    return ModelsConfig(default, {n: _model_from(n, m, str(path)) for n, m in models.items()})


def _write_private(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` atomically with a file created with ``mode`` from the start."""
    from .. import paths

    if path.parent == paths.home():
        paths.ensure_home()
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_config(config: ModelsConfig) -> None:
    import tomli_w

    doc: dict[str, Any] = {}
    if config.default:
        doc["default"] = config.default
    doc["models"] = {name: m.to_toml() for name, m in sorted(config.models.items())}
    _write_private(config_path(), tomli_w.dumps(doc).encode(), mode=0o644)


def add_model(
    name: str,
    *,
    base_url: str,
    model: str,
    api_key_env: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
    make_default: bool = False,
) -> ModelConfig:
    """Add or replace a model in the configuration."""
    if not _NAME_RE.match(name):
        raise BadInput(f"model name {name!r} may use letters, digits and . _ : / - only")
    if name in BUILTIN_NAMES:
        raise BadInput(f"{name!r} is a built-in model; choose another name")
    if not re.match(r"^https?://[^\s/]+", base_url):
        raise BadInput(f"--base-url {base_url!r} must start with http:// or https://")
    if api_key_env is not None and not _ENV_RE.match(api_key_env):
        raise BadInput(f"--api-key-env {api_key_env!r} is not an environment variable name")
    if timeout is not None and timeout <= 0:
        raise BadInput("--timeout must be more than 0 seconds")
    config = load_config()
    entry = ModelConfig(name, base_url.rstrip("/"), model, api_key_env, dict(headers or {}), timeout)
    config.models[name] = entry
    if make_default:
        config.default = name
    save_config(config)
    return entry


def remove_model(name: str) -> None:
    config = load_config()
    if name not in config.models:
        raise NotFound(f"no configured model {name!r}")
    del config.models[name]
    if config.default == name:
        config.default = None
    save_config(config)
    keys = _read_keys()
    if name in keys:
        del keys[name]
        _write_keys(keys)


def set_default(name: str) -> None:
    config = load_config()
    if name not in config.models and name not in BUILTIN_NAMES:
        raise NotFound(f"no model {name!r}; add it with `localfirst models add`")
    config.default = None if name in BUILTIN_NAMES else name
    save_config(config)


def _read_keys() -> dict[str, str]:
    path = keys_path()
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} can be read by other users; run: chmod 600 {path}")
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        # The message of a JSON error can quote the file, which holds keys.
        raise ConfigError(f"{path} cannot be read as a JSON object of keys") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f"{path} must be a JSON object of model name to key")
    return data


def _write_keys(keys: dict[str, str]) -> None:
    _write_private(keys_path(), json.dumps(keys, indent=2, sort_keys=True).encode() + b"\n", mode=0o600)


def set_key(name: str, key: str) -> None:
    """Store the API key of a configured model in the keys file."""
    if name not in load_config().models:
        raise NotFound(f"no configured model {name!r}")
    key = key.strip()
    if not key:
        raise BadInput("the key is empty; pipe it on stdin")
    keys = _read_keys()
    keys[name] = key
    _write_keys(keys)


def key_source(config: ModelConfig) -> str:
    """Where the key comes from, for display; never the key itself."""
    if config.api_key_env:
        return f"${config.api_key_env}"
    return "keys file" if config.name in _read_keys() else "none"


def resolve_key(config: ModelConfig) -> str | None:
    """The API key for ``config``: its environment variable, else the keys file, else None."""
    if config.api_key_env:
        value = os.environ.get(config.api_key_env, "").strip()
        if not value:
            raise ConfigError(
                f"model {config.name!r} reads its API key from ${config.api_key_env}, which is not set"
            )
        return value
    return _read_keys().get(config.name) or None
