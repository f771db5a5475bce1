"""Chinese results in Simplified by default, Traditional on request; other languages untouched."""

from __future__ import annotations

import httpx
import pytest

from asr_server.service.task_options import OptionError, parse_task_options
from asr_server.text.zh_script import apply_zh_script, convert_text
from conftest import EVAL, submit, wait_for_task

TRADITIONAL = "都說印度是外資墳地，頭髮"
SIMPLIFIED = "都说印度是外资坟地，头发"


def zh_result(text: str) -> dict:
    return {
        "text": text,
        "language": "zh",
        "segments": [{"id": 0, "text": text, "tokens": [50364, 1, 2], "words": [{"word": text[:3], "start": 0.0}]}],
    }


def test_conversion_is_phrase_level_both_ways():
    assert convert_text(TRADITIONAL, "simplified") == SIMPLIFIED
    assert convert_text(SIMPLIFIED, "traditional") == TRADITIONAL
    assert convert_text(TRADITIONAL, "as-is") == TRADITIONAL


def test_every_text_of_a_chinese_result_is_converted_and_tokens_are_kept():
    converted = apply_zh_script(zh_result(TRADITIONAL), "simplified")
    assert converted["text"] == SIMPLIFIED
    assert converted["segments"][0]["text"] == SIMPLIFIED
    assert converted["segments"][0]["words"][0]["word"] == SIMPLIFIED[:3]
    assert converted["segments"][0]["tokens"] == [50364, 1, 2]


def test_results_in_other_languages_are_left_alone():
    japanese = {**zh_result(TRADITIONAL), "language": "ja"}
    assert apply_zh_script(japanese, "simplified") == japanese


def test_an_unknown_script_is_refused_naming_the_field():
    with pytest.raises(OptionError, match="zh_script"):
        parse_task_options({"zh_script": "cyrillic"})
    assert parse_task_options({"zh_script": "traditional", "unknown": "x"}) == {"output": {"zh_script": "traditional"}}
    assert parse_task_options({}) == {}


# -- end to end: the real server, the real model, a Mandarin clip from ../shared/eval -------------

CLIP = EVAL / "zh_aishell_sample_BAC009S0150W0481.wav"  # 仙桃市龙华山派出所民警沉着冷静地将藏獒一枪击毙


def han(text: str) -> str:
    return "".join(ch for ch in text if "\u4e00" <= ch <= "\u9fff")


@pytest.fixture(scope="module")
def mandarin(server):
    """The clip transcribed three ways: default, zh_script=traditional, zh_script=as-is."""
    out = {}
    for script in ("default", "traditional", "as-is"):
        fields = {} if script == "default" else {"zh_script": script}
        response = submit(server.url, CLIP, **fields)
        assert response.status_code == 201, response.text
        out[script] = wait_for_task(server.url, response.json()["task_id"])
        assert out[script].status_code == 200, out[script].text
    return out


def test_mandarin_comes_back_in_simplified_by_default(mandarin):
    body = mandarin["default"].json()
    result = body["result"]
    assert result["language"] == "zh"
    assert han(result["text"]) and convert_text(result["text"], "simplified") == result["text"]
    assert all(convert_text(s["text"], "simplified") == s["text"] for s in result["segments"])
    assert han(result["text"]) == han(convert_text(mandarin["as-is"].json()["result"]["text"], "simplified"))


def test_mandarin_comes_back_in_traditional_on_request(mandarin):
    text = mandarin["traditional"].json()["result"]["text"]
    assert convert_text(text, "traditional") == text
    assert text != mandarin["default"].json()["result"]["text"], "the two scripts differ on this clip"


def test_srt_of_a_mandarin_task_is_in_the_tasks_script(server, mandarin):
    for script, convert in (("default", "simplified"), ("traditional", "traditional")):
        task_id = mandarin[script].json()["task_id"]
        srt = httpx.get(f"{server.url}/api/v1/asr/task/{task_id}", params={"format": "srt"})
        assert srt.status_code == 200
        assert srt.headers["content-type"].startswith("application/x-subrip")
        body = srt.text
        assert "-->" in body and han(body) and convert_text(body, convert) == body


def test_an_invalid_zh_script_gets_400_naming_the_field(server):
    response = submit(server.url, CLIP, zh_script="klingon")
    assert response.status_code == 400
    assert "zh_script" in response.json()["error"]


def test_a_task_given_zh_is_steered_to_simplified_with_a_prompt_unless_it_has_its_own():
    from asr_server.config import DecodingOptions
    from asr_server.text.zh_script import SIMPLIFIED_PROMPT, steer_decoding

    assert steer_decoding(DecodingOptions(language="zh"), "simplified").initial_prompt == SIMPLIFIED_PROMPT
    assert steer_decoding(DecodingOptions(language="zh"), "traditional").initial_prompt is None
    assert steer_decoding(DecodingOptions(language="en"), "simplified").initial_prompt is None
    assert steer_decoding(DecodingOptions(language="zh", initial_prompt="术语"), "simplified").initial_prompt == "术语"
