"""Configuration is validated once; an invalid value stops start-up naming its key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from asr_server.config_loading import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["cpu-int8.toml", "gpu-fp16.toml", "gpu-int8.toml", "two-models.toml"])
def test_shipped_configs_are_valid(name):
    settings = load_settings(REPO / "configs" / name, environ={})
    assert settings.model.name == "base"


def test_gpu_configs_select_their_precision():
    assert load_settings(REPO / "configs/gpu-fp16.toml", environ={}).model.compute_type == "float16"
    assert load_settings(REPO / "configs/gpu-int8.toml", environ={}).model.compute_type == "int8_float16"


def test_invalid_value_names_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[scheduler]\nmax_batch_size = 0\n")
    with pytest.raises(ConfigError, match=r"scheduler\.max_batch_size"):
        load_settings(path, environ={})


def test_unknown_key_is_rejected_by_name(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[model]\ncompute = 'int8'\n")
    with pytest.raises(ConfigError, match=r"model\.compute"):
        load_settings(path, environ={})


def test_environment_overrides_the_file_and_flags_override_both(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[scheduler]\nmax_batch_size = 4\n[server]\nport = 9000\n")
    env = {"ASR_SCHEDULER__MAX_BATCH_SIZE": "6", "ASR_SERVER__PORT": "9100"}
    settings = load_settings(path, {"server": {"port": 9200}}, environ=env)
    assert settings.scheduler.max_batch_size == 6
    assert settings.server.port == 9200


def test_temperatures_accept_a_single_value_or_a_list(tmp_path):
    assert load_settings(None, {"decoding": {"temperatures": 0.0}}, environ={}).decoding.temperatures == (0.0,)
    env = {"ASR_DECODING__TEMPERATURES": "[0.0, 0.5]"}
    assert load_settings(None, environ=env).decoding.temperatures == (0.0, 0.5)


def test_serve_with_an_invalid_config_exits_2_naming_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[model]\ndevice = 'tpu'\n")
    proc = subprocess.run([sys.executable, "-m", "asr_server", "serve", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "model.device" in proc.stderr


def test_missing_config_file_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "asr_server", "serve", "--config", str(tmp_path / "nope.toml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "not found" in proc.stderr


def test_an_environment_variable_for_an_unknown_section_is_rejected_by_name():
    with pytest.raises(ConfigError, match=r"ASR_SCHEDULR__MAX_BATCH_SIZE"):
        load_settings(None, environ={"ASR_SCHEDULR__MAX_BATCH_SIZE": "4"})


def test_an_environment_variable_for_an_unknown_key_is_rejected_by_name():
    with pytest.raises(ConfigError, match=r"scheduler\.max_batch"):
        load_settings(None, environ={"ASR_SCHEDULER__MAX_BATCH": "4"})


def test_asr_variables_without_a_section_are_left_to_their_readers():
    # ASR_API_KEY is the CLI's key for `submit`, not a configuration key.
    assert load_settings(None, environ={"ASR_API_KEY": "secret"}).scheduler.max_batch_size == 8


def test_an_environment_value_is_json_where_it_parses():
    settings = load_settings(None, environ={"ASR_DECODING__LANGUAGE": "null", "ASR_DECODING__VAD_FILTER": "true",
                                            "ASR_SERVER__HOST": "0.0.0.0"})
    assert settings.decoding.language is None and settings.decoding.vad_filter is True
    assert settings.server.host == "0.0.0.0"


def test_several_models_are_listed_by_id_the_default_first(tmp_path):
    path = tmp_path / "two.toml"
    path.write_text('[model]\nname = "base"\n\n[[models]]\nname = "tiny.en"\nload = "first_use"\n'
                    '\n[[models]]\nid = "mine"\nname = "/srv/models/whisper-small-ct2"\n')
    settings = load_settings(path, environ={})
    assert list(settings.all_models) == ["base", "tiny.en", "mine"]
    assert settings.all_models["tiny.en"].is_english_only and not settings.all_models["base"].is_english_only


def test_two_models_with_one_id_are_refused_by_name(tmp_path):
    path = tmp_path / "dup.toml"
    path.write_text('[[models]]\nname = "/srv/other/base"\n')
    with pytest.raises(ConfigError, match=r"models\[0\]\.id = 'base' names another model already"):
        load_settings(path, environ={})


def test_an_unknown_key_of_a_listed_model_is_refused_by_name(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[models]]\nname = "tiny.en"\ncolour = "blue"\n')
    with pytest.raises(ConfigError, match=r"models\.0\.colour"):
        load_settings(path, environ={})
