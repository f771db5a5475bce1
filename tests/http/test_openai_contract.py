"""The OpenAI contract where no transcription is needed: models, refusals, errors and usage.

The app runs in-process with its store open and no model loaded; the official ``openai``
client talks to it through Starlette's TestClient (an httpx client), or plain HTTP where the
client hides the status.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from starlette.testclient import TestClient

from asr_server.config import Settings
from asr_server.errors import AudioTooLong, Failure
from asr_server.http.app import create_app
from asr_server.http.auth import hash_key
from asr_server.http.openai_routes import _answer, _failed, _refused
from asr_server.service.tasks import Refusal

KEY = "sk-test-key"


def app_client(data_dir, **settings) -> Iterator[TestClient]:
    """The app with its store open and no engine: every request that needs no transcription."""
    app = create_app(Settings(server={"data_dir": str(data_dir)}, auth={"api_key_hashes": [hash_key(KEY)]},
                              **settings))
    service = app.state.service
    service.open()
    try:
        yield TestClient(app, headers={"Authorization": f"Bearer {KEY}"})
    finally:
        service.close()


@pytest.fixture
def http(tmp_path) -> Iterator[TestClient]:
    yield from app_client(tmp_path)


@pytest.fixture
def client(http) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/v1", api_key=KEY, http_client=http, max_retries=0)


def post_audio(http: TestClient, **fields: str):
    return http.post("/v1/audio/transcriptions", files={"file": ("a.wav", b"RIFF....WAVE")}, data=fields)


def test_a_request_without_model_is_refused_as_openai_refuses_it(http):
    response = post_audio(http)
    assert response.status_code == 400
    assert response.json()["error"] == {"message": "You must provide a model parameter",
                                         "type": "invalid_request_error", "param": "model", "code": None}


def test_an_unknown_model_gets_404_model_not_found(client):
    with open(__file__, "rb") as handle, pytest.raises(openai.NotFoundError) as refused:
        client.audio.transcriptions.create(model="whisper-9", file=handle)
    assert refused.value.code == "model_not_found" and refused.value.body["param"] == "model"
    assert refused.value.body["type"] == "invalid_request_error"


@pytest.mark.parametrize("model", [None, "Systran/faster-whisper-large-v3"])
def test_lenient_model_lets_any_or_no_model_through_to_the_default(tmp_path, model):
    # An empty file is refused after the model check: the answer names the file, not the model.
    for http in app_client(tmp_path, openai={"lenient_model": True}):
        response = http.post("/v1/audio/transcriptions", files={"file": ("a.wav", b"")},
                             data={"model": model} if model else {})
        assert response.status_code == 400 and response.json()["error"]["param"] == "file"


def test_models_retrieve_answers_a_listed_model(client):
    listed = [model.id for model in client.models.list()]
    assert listed == ["whisper-1", "base"]
    for model_id in listed:
        model = client.models.retrieve(model_id)
        assert (model.id, model.object, model.owned_by) == (model_id, "model", "asr-server")


def test_models_retrieve_of_an_unknown_model_is_404_model_not_found(client):
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-4o-transcribe")
    assert missing.value.code == "model_not_found"


def test_an_unknown_path_under_v1_is_a_404_in_openais_shape(http):
    response = http.get("/v1/audio/speech")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "/v1/audio/speech" in response.json()["error"]["message"]


def test_a_method_not_allowed_under_v1_is_a_405_in_openais_shape(http):
    response = http.delete("/v1/models")
    assert response.status_code == 405 and response.json()["error"]["type"] == "invalid_request_error"


def test_an_unknown_path_elsewhere_keeps_starlettes_plain_404(http):
    response = http.get("/api/v2/nothing")
    assert response.status_code == 404 and response.text == "Not Found"


def test_a_missing_key_under_v1_is_openais_invalid_api_key(http):
    client = openai.OpenAI(base_url="http://testserver/v1", api_key="wrong", http_client=http, max_retries=0)
    http.headers.pop("Authorization")
    with pytest.raises(openai.AuthenticationError) as refused:
        client.models.list()
    assert refused.value.code == "invalid_api_key" and refused.value.status_code == 401


def test_a_missing_key_on_the_task_api_keeps_its_own_body(http):
    http.headers.pop("Authorization")
    response = http.get("/api/v1/asr/tasks")
    assert response.status_code == 401 and isinstance(response.json()["error"], str)


def test_a_key_over_its_rate_is_openais_rate_limit_error():
    body = _refused(Refusal("Too many requests", 7, status=429)).body
    assert b'"type":"requests"' in body and b'"code":"rate_limit_exceeded"' in body


def test_a_busy_server_is_a_server_error():
    response = _refused(Refusal("Queue full", 5))
    assert response.status_code == 503 and b'"type":"server_error"' in response.body
    assert response.headers["Retry-After"] == "5"


def test_a_failure_of_the_server_says_no_exception_text():
    try:
        raise ValueError("secret internals: /srv/models/x.bin")
    except ValueError as exc:
        failure = Failure.of(exc)
    response = _failed(failure)
    assert response.status_code == 500 and b'"type":"server_error"' in response.body
    assert b"secret internals" not in response.body


def test_audio_too_long_is_the_clients_mistake_about_its_file():
    response = _failed(Failure.of(AudioTooLong("The audio is 2 h; this server transcribes at most 3600 s")))
    assert response.status_code == 400
    assert b'"param":"file"' in response.body and b"AudioTooLong" not in response.body


RESULT = {"text": " Hi.", "segments": [{"start": 0.0, "end": 1.0, "text": " Hi."}], "language": "en"}


@pytest.mark.parametrize("response_format", ["json", "verbose_json"])
def test_usage_is_the_duration_rounded_up_to_whole_seconds(response_format):
    import json

    body = json.loads(_answer(RESULT, response_format, "transcribe", {}, duration=10.2).body)
    assert body["usage"] == {"type": "duration", "seconds": 11}
