"""API keys: 401 without a listed key, and each key sees only its own tasks (the seed's 404 otherwise)."""

from __future__ import annotations

import httpx
import pytest

from asr_server.http.auth import hash_key, load_digests
from conftest import AUDIO, serving, wait_for_task

ALICE, BOB = "alice-key-0123456789", "bob-key-9876543210"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth")
    keys_file = root / "keys.txt"
    keys_file.write_text(f"# asr-server keys\n{hash_key(BOB)} bob\n")
    yield from serving(root / "data", {
        "ASR_AUTH__API_KEY_HASHES": f'["{hash_key(ALICE)}"]',
        "ASR_AUTH__API_KEYS_FILE": str(keys_file),
    })


def post(url: str, headers: dict[str, str]) -> httpx.Response:
    with open(AUDIO / "jfk.flac", "rb") as handle:
        return httpx.post(f"{url}/api/v1/asr/task", files={"file": ("jfk.flac", handle)},
                          data={"language": "en"}, headers=headers, timeout=60)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_request_without_a_key_gets_401_with_a_json_error(keyed):
    response = post(keyed.url, {})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"].startswith("Missing API key")


def test_a_wrong_key_gets_401(keyed):
    response = httpx.get(f"{keyed.url}/api/v1/asr/tasks", headers=bearer("not-a-key"), timeout=10)
    assert response.status_code == 401
    assert response.json()["error"].startswith("Invalid API key")


def test_keys_from_the_config_list_and_from_the_keys_file_both_work_in_either_header(keyed):
    assert httpx.get(f"{keyed.url}/api/v1/asr/tasks", headers=bearer(ALICE), timeout=10).status_code == 200
    assert httpx.get(f"{keyed.url}/api/v1/asr/tasks", headers={"X-API-Key": BOB}, timeout=10).status_code == 200


def test_a_task_is_visible_only_to_the_key_that_created_it(keyed):
    task_id = post(keyed.url, bearer(ALICE)).json()["task_id"]
    response = httpx.get(f"{keyed.url}/api/v1/asr/task/{task_id}", headers=bearer(BOB), timeout=10)
    assert response.status_code == 404
    assert response.json() == {"task_id": task_id, "status": "Task not found", "result": ""}
    assert task_id not in httpx.get(f"{keyed.url}/api/v1/asr/tasks", headers=bearer(BOB), timeout=10).text
    assert httpx.delete(f"{keyed.url}/api/v1/asr/task/{task_id}", headers=bearer(BOB), timeout=10).status_code == 404
    assert task_id in httpx.get(f"{keyed.url}/api/v1/asr/tasks", headers=bearer(ALICE), timeout=10).text
    response = wait_for_task(keyed.url, task_id, headers=bearer(ALICE))
    assert response.status_code == 200
    assert "ask not what your country" in response.json()["result"]["text"]


def test_the_page_and_health_probes_stay_open(keyed):
    assert httpx.get(keyed.url + "/", timeout=10).status_code == 200
    assert httpx.get(keyed.url + "/healthz", timeout=10).status_code == 200
    assert httpx.get(keyed.url + "/readyz", timeout=10).status_code == 200


def test_the_openai_route_needs_a_key_too(keyed):
    with open(AUDIO / "jfk.flac", "rb") as handle:
        response = httpx.post(f"{keyed.url}/v1/audio/transcriptions", files={"file": ("jfk.flac", handle)},
                              data={"model": "whisper-1"}, timeout=60)
    assert response.status_code == 401


def test_a_keys_file_line_that_is_not_a_digest_is_refused(tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("plaintext-key\n")
    with pytest.raises(ValueError, match="not a SHA-256 hex digest"):
        load_digests([], str(keys_file))


def test_tracebacks_are_replaced_by_a_short_error_when_the_switch_is_off(server_factory, tmp_path):
    server = server_factory(extra_env={"ASR_SERVER__EXPOSE_TRACEBACKS": "false"}).start()
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"not audio " * 100)
    with open(broken, "rb") as handle:
        task_id = httpx.post(f"{server.url}/api/v1/asr/task", files={"file": ("broken.mp3", handle)},
                             timeout=60).json()["task_id"]
    response = wait_for_task(server.url, task_id)
    assert response.status_code == 500
    result = response.json()["result"]
    assert result.startswith("Transcription failed (") and "Traceback" not in result and "/" not in result


def test_a_missing_keys_file_is_refused_naming_it(tmp_path):
    from asr_server.http.auth import KeysFileError

    with pytest.raises(KeysFileError, match=r"keys\.txt"):
        load_digests([], str(tmp_path / "keys.txt"))


def test_serve_reports_only_a_keys_file_problem_as_one(monkeypatch):
    # Any other error from building the app is not blamed on auth.api_keys_file.
    from asr_server import cli
    from asr_server.config import Settings
    from asr_server.http import app as app_module

    def broken(settings):
        raise ValueError("something else")

    monkeypatch.setattr(app_module, "create_app", broken)
    with pytest.raises(ValueError, match="something else"):
        cli._serve(Settings(), "info")


def test_a_keys_file_line_may_give_its_key_limits_of_its_own(tmp_path):
    digest, other = "a" * 64, "b" * 64
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"{digest} team-a queued_tasks=4 requests_per_minute=120\n{other}\n")
    assert load_digests([], str(keys_file)) == {digest: {"queued_tasks": 4, "requests_per_minute": 120}, other: {}}


def test_an_unknown_limit_in_the_keys_file_is_refused_naming_it_and_the_line(tmp_path):
    from asr_server.http.auth import KeysFileError

    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"{'a' * 64}\n{'b' * 64} max_tasks=3\n")
    with pytest.raises(KeysFileError, match="line 2: unknown limit 'max_tasks'"):
        load_digests([], str(keys_file))


def test_a_keys_file_limit_that_is_not_a_whole_number_is_refused(tmp_path):
    from asr_server.http.auth import KeysFileError

    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"{'a' * 64} queued_tasks=-1\n")
    with pytest.raises(KeysFileError, match="queued_tasks must be a whole number"):
        load_digests([], str(keys_file))
