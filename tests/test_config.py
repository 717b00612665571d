"""Settings: defaults < TOML file < environment < command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from clickthru.config import ConfigError, Settings, load_settings


def test_each_source_overrides_the_one_before(tmp_path: Path) -> None:
    config = tmp_path / "clickthru.toml"
    config.write_text('port = 9000\nstore = "from-file.db"\nworkers = 2\n')
    env = {
        "CLICKTHRU_PORT": "9100",
        "CLICKTHRU_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
        "CLICKTHRU_FIRST_PARTY_PROXIES": "198.51.100.7",
        "OTHER": "x",
    }
    settings = load_settings(config, env, workers=4)
    assert settings == Settings(
        port=9100,
        store="from-file.db",
        workers=4,
        trusted_proxies=["10.0.0.0/8", "::1"],
        first_party_proxies=["198.51.100.7"],
    )


def test_the_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text('host = "0.0.0.0"\n')
    assert load_settings(None, {"CLICKTHRU_CONFIG": str(config)}).host == "0.0.0.0"


@pytest.mark.parametrize(
    ("content", "env", "message"),
    [
        ("port = 'many'", {}, "bad setting"),
        ("prot = 80", {}, "bad setting"),
        ("port = ", {}, "cannot read"),
        ("", {"CLICKTHRU_WORKERS": "two"}, "bad setting"),
        ('trusted_proxies = ["10.0.0.0/8", "shop.example"]', {}, "shop.example"),
        ("trusted_proxies = true", {}, "bad setting"),
        ('first_party_proxies = ["10.0.0.300"]', {}, "10.0.0.300"),
    ],
)
def test_bad_settings_are_named(
    tmp_path: Path, content: str, env: dict[str, str], message: str
) -> None:
    config = tmp_path / "clickthru.toml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(config, env)


@pytest.mark.parametrize(
    "env",
    [
        {"CLICKTHRU_WORKERS": "0"},
        {"CLICKTHRU_PORT": "70000"},
        {"CLICKTHRU_MAX_BODY_BYTES": "10"},
        {"CLICKTHRU_LOG_LEVEL": "loud"},
    ],
)
def test_out_of_range_settings_are_refused(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="bad setting"):
        load_settings(None, env)


def test_a_named_settings_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no settings file"):
        load_settings(tmp_path / "absent.toml", {})
