"""Per-task options as form fields: validated before a task exists, applied to that task alone."""

from __future__ import annotations

import pytest

from asr_server.config import DecodingOptions
from asr_server.service.task_options import OptionError, apply_decoding, parse_task_options
from conftest import AUDIO, EVAL, submit, wait_for_task


def test_known_fields_become_typed_decoding_and_output_overrides():
    options = parse_task_options({"language": "de", "task": "translate", "beam_size": "3",
                                  "temperature": "0,0.4", "vad_filter": "true", "initial_prompt": "Simplicissimus",
                                  "zh_script": "as-is"})
    assert options == {
        "decoding": {"language": "de", "task": "translate", "beam_size": 3, "temperatures": [0.0, 0.4],
                     "vad_filter": True, "initial_prompt": "Simplicissimus"},
        "output": {"zh_script": "as-is"},
    }


def test_speech_guard_false_turns_the_guard_off_for_that_task():
    options = parse_task_options({"speech_guard": "false"})
    assert options == {"decoding": {"speech_guard": False}}
    assert apply_decoding(DecodingOptions(), options).speech_guard is False
    assert DecodingOptions().speech_guard is True


def test_no_fields_and_unknown_fields_leave_the_defaults():
    assert parse_task_options({}) == {}
    assert parse_task_options({"model": "whisper-1", "language": ""}) == {}


@pytest.mark.parametrize("field, value", [
    ("language", "xx"), ("task", "summarise"), ("beam_size", "0"), ("beam_size", "many"),
    ("temperature", "hot"), ("temperature", "-1"), ("vad_filter", "maybe"), ("speech_guard", "perhaps"),
])
def test_a_bad_value_is_refused_naming_its_field(field, value):
    with pytest.raises(OptionError, match=f"Invalid '{field}'"):
        parse_task_options({field: value})


def test_stored_overrides_apply_over_the_config_with_their_types():
    stored = parse_task_options({"temperature": "0,0.4", "beam_size": "2"})
    decoding = apply_decoding(DecodingOptions(language="en"), stored)
    assert decoding.temperatures == (0.0, 0.4) and decoding.beam_size == 2 and decoding.language == "en"
    hash(decoding.temperatures)  # batch keys hash the options


# -- end to end ---------------------------------------------------------------------------------

def test_a_language_given_per_task_is_used(server):
    response = submit(server.url, EVAL / "es_librivox_capitan_veneno.mp3", language="es", beam_size="1")
    done = wait_for_task(server.url, response.json()["task_id"], timeout=300)
    assert done.status_code == 200
    assert done.json()["result"]["language"] == "es"


def test_translate_and_vad_filter_are_accepted_and_the_task_completes(server):
    response = submit(server.url, AUDIO / "jfk.flac", task="translate", vad_filter="true", language="en")
    done = wait_for_task(server.url, response.json()["task_id"])
    assert done.status_code == 200
    text = done.json()["result"]["text"].lower()
    assert "ask not what your country can do for you" in text, text


def test_an_invalid_option_gets_400_and_no_task(server):
    response = submit(server.url, AUDIO / "jfk.flac", beam_size="0")
    assert response.status_code == 400
    assert response.json() == {"error": "Invalid 'beam_size': Input should be greater than or equal to 1"}


@pytest.mark.parametrize("value, stored", [("false", {"pack": False}), ("0", {"pack": False}), ("true", {}), ("", {})])
def test_the_pack_field_keeps_a_task_out_of_packs_when_false(value, stored):
    assert parse_task_options({"pack": value}) == stored


def test_a_pack_value_that_is_not_a_boolean_gets_400_naming_it():
    with pytest.raises(OptionError, match="'pack'"):
        parse_task_options({"pack": "maybe"})


def test_priority_interactive_is_kept_and_batch_is_the_default():
    assert parse_task_options({"priority": "interactive"}) == {"priority": "interactive"}
    assert parse_task_options({"priority": "batch"}) == {}


def test_an_unknown_priority_is_refused_naming_the_field():
    with pytest.raises(OptionError) as refused:
        parse_task_options({"priority": "urgent"})
    assert refused.value.field == "priority" and "interactive" in str(refused.value)


def models(*ids: str) -> dict:
    from asr_server.config import ModelConfig

    return {model_id: ModelConfig(name=model_id) for model_id in ids}


def test_a_model_is_chosen_by_its_id_and_recorded_on_a_server_of_several():
    assert parse_task_options({"model": "tiny.en"}, models=models("base", "tiny.en")) == {"model": "tiny.en"}
    assert parse_task_options({}, models=models("base", "tiny.en")) == {"model": "base"}


def test_whisper_1_names_the_default_model():
    assert parse_task_options({"model": "whisper-1"}, models=models("base", "tiny.en")) == {"model": "base"}


def test_a_server_of_one_model_records_no_model():
    assert parse_task_options({"model": "base"}, models=models("base")) == {}


def test_an_unknown_model_is_refused_naming_the_models_there_are():
    with pytest.raises(OptionError, match=r"Invalid 'model': unknown model 'large'; this server has: base, tiny\.en"):
        parse_task_options({"model": "large"}, models=models("base", "tiny.en"))


@pytest.mark.parametrize("fields, field", [({"language": "de"}, "language"), ({"task": "translate"}, "task")])
def test_an_english_only_model_refuses_other_languages_and_translation(fields, field):
    with pytest.raises(OptionError, match=f"Invalid '{field}': the model 'tiny.en' knows English only") as caught:
        parse_task_options({"model": "tiny.en", **fields}, models=models("base", "tiny.en"))
    assert caught.value.field == field


def test_an_english_only_model_takes_english():
    options = parse_task_options({"model": "tiny.en", "language": "en"}, models=models("base", "tiny.en"))
    assert options["model"] == "tiny.en"


def test_a_deadline_counts_from_the_upload_and_is_stored_as_a_time():
    assert parse_task_options({"deadline_s": "90"}, now=1_000.0) == {"deadline_at": 1_090.0}


@pytest.mark.parametrize("value", ["0", "-5", "soon", str(8 * 24 * 3600)])
def test_a_deadline_that_is_not_a_positive_number_of_seconds_within_a_week_is_refused(value):
    with pytest.raises(OptionError, match="Invalid 'deadline_s'"):
        parse_task_options({"deadline_s": value})
