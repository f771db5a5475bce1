"""The model pool: models load when first needed, are shared, and leave memory when idle or
when the cap needs room, never from under a task. A scripted clock stands for time; loaders
are plain functions that count their calls."""

from __future__ import annotations

import threading

import pytest

from asr_server.scheduling.model_pool import ModelPool, ModelSpec, ModelUnavailable, PoolClosed, UnknownModel


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """Loads an engine named after its model, and counts how often it was asked to."""

    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.calls = 0
        self.fail = fail

    def __call__(self) -> str:
        self.calls += 1
        if self.fail:
            raise FileNotFoundError(f"{self.name}/model.bin")
        return f"engine-{self.name}-{self.calls}"


def pool_of(*names: str, max_loaded: int = 0, unload_after_s: float = 0.0, clock: Clock | None = None):
    loaders = {name: Loader(name) for name in names}
    specs = {name: ModelSpec(loader, unload_after_s) for name, loader in loaders.items()}
    return ModelPool(specs, max_loaded, clock or Clock()), loaders


def test_a_model_loads_when_first_acquired_and_is_shared_afterwards():
    pool, loaders = pool_of("base")
    assert pool.status()["base"]["loaded"] is False
    first = pool.acquire("base")
    second = pool.acquire("base")
    assert first == second == "engine-base-1" and loaders["base"].calls == 1
    assert pool.status()["base"] == {"loaded": True, "loading": False, "tasks": 2, "error": None}


def test_an_unknown_model_is_refused():
    pool, _ = pool_of("base")
    with pytest.raises(UnknownModel):
        pool.acquire("large")


def test_a_model_that_fails_to_load_fails_its_acquire_and_the_next_one_tries_again():
    broken = Loader("broken", fail=True)
    pool = ModelPool({"broken": ModelSpec(broken)})
    with pytest.raises(ModelUnavailable, match=r"The model 'broken' could not be loaded: broken/model\.bin"):
        pool.acquire("broken")
    assert pool.status()["broken"]["error"] == "FileNotFoundError: broken/model.bin"
    broken.fail = False
    assert pool.acquire("broken") == "engine-broken-2"
    assert pool.status()["broken"]["error"] is None


def test_an_idle_model_unloads_after_its_time_and_loads_again_when_needed():
    clock = Clock()
    pool, loaders = pool_of("tiny", unload_after_s=60, clock=clock)
    pool.acquire("tiny")
    pool.release("tiny")
    clock.now = 59.0
    assert pool.unload_idle() == []
    clock.now = 60.0
    assert pool.unload_idle() == ["tiny"] and pool.loaded("tiny") is None
    assert pool.acquire("tiny") == "engine-tiny-2" and loaders["tiny"].calls == 2


def test_a_model_held_by_a_task_never_unloads_however_long_it_runs():
    clock = Clock()
    pool, _ = pool_of("tiny", unload_after_s=60, clock=clock)
    pool.acquire("tiny")
    clock.now = 3600.0
    assert pool.unload_idle() == [] and pool.loaded("tiny") is not None


def test_a_model_set_to_stay_never_unloads():
    clock = Clock()
    pool, _ = pool_of("base", clock=clock)
    pool.acquire("base")
    pool.release("base")
    clock.now = 1e9
    assert pool.unload_idle() == []


def test_at_the_cap_loading_a_model_unloads_the_least_recently_used_idle_one():
    clock = Clock()
    pool, _ = pool_of("a", "b", "c", max_loaded=2, clock=clock)
    for now, name in ((1.0, "a"), (2.0, "b")):
        clock.now = now
        pool.acquire(name)
        pool.release(name)
    clock.now = 3.0
    pool.acquire("a")
    pool.release("a")  # a is now the more recently used
    pool.acquire("c")
    assert {name for name, s in pool.status().items() if s["loaded"]} == {"a", "c"}


def test_at_the_cap_with_every_model_in_use_a_load_waits_for_a_release():
    pool, _ = pool_of("a", "b", max_loaded=1)
    pool.acquire("a")
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire("b")))
    waiter.start()
    waiter.join(0.2)  # a deadline that catches a hang; the wait itself is asserted below
    assert waiter.is_alive() and not got and pool.loaded("b") is None
    pool.release("a")
    waiter.join(30)
    assert got == ["engine-b-1"] and pool.loaded("a") is None


def test_tasks_asking_for_a_model_being_loaded_wait_for_that_one_load():
    gate = threading.Event()
    calls = []

    def slow_load() -> str:
        calls.append(1)
        gate.wait(30)
        return "engine"

    pool = ModelPool({"base": ModelSpec(slow_load)})
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(pool.acquire("base"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(30)
    assert got == ["engine"] * 3 and len(calls) == 1


def test_closing_the_pool_ends_a_wait_for_room():
    pool, _ = pool_of("a", "b", max_loaded=1)
    pool.acquire("a")
    ended: list[BaseException] = []

    def wait_for_b() -> None:
        try:
            pool.acquire("b")
        except PoolClosed as exc:
            ended.append(exc)

    waiter = threading.Thread(target=wait_for_b)
    waiter.start()
    pool.close()
    waiter.join(30)
    assert not waiter.is_alive() and len(ended) == 1
