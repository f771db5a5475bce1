"""The batching policy, synchronously: given the windows on offer, the tasks being prepared and
the time, the exact plan it returns. No engine, no threads, no clock."""

from __future__ import annotations

from dataclasses import dataclass

from asr_server.scheduling.policy import BatchPolicy, Hold, Idle, Run


@dataclass(frozen=True)
class W:
    """A window as the policy sees it: a name and a batch key."""

    name: str
    batch_key: tuple = (0,)


def names(plan) -> list[str]:
    return [w.name for w in plan.batch]


def policy(max_batch_size: int = 4, max_wait_s: float = 3.0) -> BatchPolicy:
    return BatchPolicy(max_batch_size, max_wait_s)


def test_nothing_on_offer_is_idle():
    assert policy().schedule([], preparing=3, now=0.0) == Idle()


def test_the_oldest_windows_batch_key_is_chosen_with_the_windows_that_share_it():
    windows = [W("a", (1,)), W("b", (2,)), W("c", (1,)), W("d", (2,)), W("e", (1,))]
    assert names(policy().schedule(windows, preparing=0, now=0.0)) == ["a", "c", "e"]


def test_a_batch_never_exceeds_max_batch_size_and_keeps_the_oldest():
    windows = [W(str(i)) for i in range(6)]
    assert names(policy(max_batch_size=4).schedule(windows, preparing=0, now=0.0)) == ["0", "1", "2", "3"]


def test_a_lone_request_runs_at_once_when_nothing_is_being_prepared():
    assert policy().schedule([W("alone")], preparing=0, now=0.0) == Run([W("alone")])


def test_a_small_batch_is_held_back_while_other_tasks_are_prepared():
    assert policy(max_wait_s=3.0).schedule([W("a")], preparing=2, now=10.0) == Hold([W("a")], until=13.0)


def test_a_zero_wait_never_holds_back():
    assert policy(max_wait_s=0).schedule([W("a")], preparing=2, now=10.0) == Run([W("a")])


def test_the_wait_counts_from_the_first_hold_not_from_each_arrival():
    rules = policy(max_wait_s=3.0)
    assert rules.schedule([W("a")], preparing=5, now=10.0) == Hold([W("a")], until=13.0)
    # A trickle of arrivals: each new plan keeps the first deadline.
    assert rules.schedule([W("a"), W("b")], preparing=4, now=11.0) == Hold([W("a"), W("b")], until=13.0)
    assert rules.schedule([W("a"), W("b"), W("c")], preparing=3, now=12.9) == Hold([W("a"), W("b"), W("c")], until=13.0)
    assert rules.schedule([W("a"), W("b"), W("c")], preparing=3, now=13.0) == Run([W("a"), W("b"), W("c")])


def test_after_a_batch_runs_the_next_hold_starts_its_own_wait():
    rules = policy(max_wait_s=3.0)
    rules.schedule([W("a")], preparing=1, now=10.0)
    assert isinstance(rules.schedule([W("a")], preparing=1, now=13.0), Run)
    rules.stepped()
    assert rules.schedule([W("b")], preparing=1, now=20.0) == Hold([W("b")], until=23.0)


def test_a_full_batch_runs_at_once_even_while_others_are_prepared():
    windows = [W(str(i)) for i in range(4)]
    assert policy(max_batch_size=4).schedule(windows, preparing=9, now=0.0) == Run(windows)
