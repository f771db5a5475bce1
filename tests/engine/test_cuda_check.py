"""What start-up says when model.device = 'cuda' cannot work here."""

from __future__ import annotations

from asr_server.engine.cuda_check import CUBLAS, cuda_problem


def test_no_visible_device_is_named():
    problem = cuda_problem(0, device_count=lambda: 0, loads=lambda _: True)
    assert "no CUDA device" in problem and "CUDA_VISIBLE_DEVICES" in problem


def test_a_device_index_past_the_devices_is_named():
    assert cuda_problem(2, device_count=lambda: 1, loads=lambda _: True) == (
        "model.device_index = 2, but CTranslate2 sees 1 CUDA device(s)")


def test_a_missing_cuda_12_cublas_is_named():
    asked = []
    problem = cuda_problem(0, device_count=lambda: 1, loads=lambda name: asked.append(name) or False)
    assert asked == [CUBLAS] and problem.startswith("libcublas.so.12 cannot be loaded")


def test_a_usable_device_is_no_problem():
    assert cuda_problem(0, device_count=lambda: 1, loads=lambda _: True) is None
