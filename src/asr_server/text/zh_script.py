"""Chinese results in the script their readers expect (``zh_script``).

The multilingual Whisper models often write Mandarin in Traditional characters. OpenCC converts
phrase by phrase (not character by character: 头发 and 发展 take different Traditional forms),
so the converted text is what a writer of that script would have written. Conversion touches
every text a result shows: ``text``, each segment's ``text`` and each word. ``tokens`` stay the
model's own and decode to the unconverted text.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any, Literal

ZhScript = Literal["simplified", "traditional", "as-is"]

# "What follows are sentences in Mandarin.", in Simplified characters. As the initial prompt of a
# task whose language is given as zh, it steers the model towards Simplified, which lowers the
# CER beyond what OpenCC's conversion alone reaches (benchmarks/zh_script.py measures both).
SIMPLIFIED_PROMPT = "以下是普通话的句子。"

_CONFIGS = {"simplified": "t2s.json", "traditional": "s2t.json"}
_lock = threading.Lock()  # OpenCC converters are not documented as thread-safe


@cache
def _converter(script: str) -> Any:
    import opencc

    return opencc.OpenCC(_CONFIGS[script])


def convert_text(text: str, script: ZhScript) -> str:
    if script == "as-is" or not text:
        return text
    with _lock:
        return _converter(script).convert(text)


def steer_decoding(decoding: Any, script: ZhScript) -> Any:
    """Decoding options that lean towards ``script`` where that is known to pay: a Simplified
    initial prompt when the language is given as zh and the task has no prompt of its own.
    (A detected language is known only after the first window is decoded: too late to prompt.)"""
    if script == "simplified" and decoding.language == "zh" and decoding.initial_prompt is None:
        return decoding.model_copy(update={"initial_prompt": SIMPLIFIED_PROMPT})
    return decoding


def apply_zh_script(result: dict[str, Any], script: ZhScript) -> dict[str, Any]:
    """The result with its Chinese text in ``script``; results in other languages are unchanged."""
    if script == "as-is" or result.get("language") != "zh":
        return result
    segments = []
    for segment in result.get("segments", []):
        converted = {**segment, "text": convert_text(segment["text"], script)}
        if segment.get("words"):
            converted["words"] = [{**word, "word": convert_text(word["word"], script)} for word in segment["words"]]
        segments.append(converted)
    return {**result, "text": convert_text(result.get("text", ""), script), "segments": segments}
