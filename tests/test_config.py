"""Settings: defaults < TOML file < environment < command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from clickthru.config import ConfigError, Settings, load_settings


def test_each_source_overrides_the_one_before(tmp_path: Path) -> None:
    config = tmp_path / "clickthru.toml"
    config.write_text('port = 9000\nstore = "from-file.db"\nworkers = 2\n')
    env = {"CLICKTHRU_PORT": "9100", "CLICKTHRU_TRUST_FORWARDED_FOR": "true", "OTHER": "x"}
    settings = load_settings(config, env, workers=4)
    assert settings == Settings(
        port=9100, store="from-file.db", workers=4, trust_forwarded_for=True
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
    ],
)
def test_bad_settings_are_named(
    tmp_path: Path, content: str, env: dict[str, str], message: str
) -> None:
    config = tmp_path / "clickthru.toml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(config, env)
