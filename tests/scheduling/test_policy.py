"""The batching policy, synchronously: given the windows on offer, the tasks being prepared and
the time, the exact plan it returns. No engine, no threads, no clock."""

from __future__ import annotations

from dataclasses import dataclass

from asr_server.scheduling.policy import BatchPolicy, Hold, Idle, Run, preparation_rank


@dataclass(frozen=True)
class W:
    """A window as the policy sees it: a name, a batch key, and what orders it."""

    name: str
    batch_key: tuple = (0,)
    interactive: bool = False
    deadline: float | None = None
    served: int = 0  # windows its task has had decoded
    waiting_since: float = 0.0
    step_cost_s: float = 0.0  # its expected share of a step
    model_time: float = 0.0  # its model's engine time so far


def names(plan) -> list[str]:
    return [w.name for w in plan.batch]


def policy(max_batch_size: int = 4, max_wait_s: float = 3.0, starvation_bound_s: float = 30.0,
           max_step_s: float = 4.0) -> BatchPolicy:
    return BatchPolicy(max_batch_size, max_wait_s, starvation_bound_s, max_step_s)


def test_nothing_on_offer_is_idle():
    assert policy().schedule([], preparing=3, now=0.0) == Idle()


def test_the_first_windows_batch_key_is_chosen_with_the_windows_that_share_it():
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
    assert rules.schedule([W("b")], preparing=1, now=20.0) == Hold([W("b")], until=23.0)


def test_a_full_batch_runs_at_once_even_while_others_are_prepared():
    windows = [W(str(i)) for i in range(4)]
    assert policy(max_batch_size=4).schedule(windows, preparing=9, now=0.0) == Run(windows)


# -- order -------------------------------------------------------------------------------------


def first(windows, now: float = 100.0, **rules) -> str:
    return names(policy(max_batch_size=1, **rules).schedule(windows, preparing=0, now=now))[0]


def test_a_new_task_runs_before_the_windows_of_tasks_already_served():
    long_files = [W(f"long{i}", served=5 + i, waiting_since=90.0 + i) for i in range(13)]
    assert first([*long_files, W("clip", served=0, waiting_since=99.0)]) == "clip"


def test_tasks_served_alike_run_longest_waiting_first():
    assert first([W("recent", served=2, waiting_since=95.0), W("older", served=2, waiting_since=91.0)]) == "older"


def test_an_interactive_window_runs_before_batch_windows():
    assert first([W("batch", waiting_since=80.0), W("live", interactive=True, served=9, waiting_since=99.0)]) == "live"


def test_an_earlier_deadline_runs_first_within_a_class():
    windows = [W("none"), W("later", deadline=200.0, served=3), W("sooner", deadline=150.0, served=7)]
    assert first(windows, now=10.0) == "sooner"
    assert first([W("batch"), W("live", interactive=True, deadline=500.0)], now=10.0) == "live"


def test_a_batch_window_is_passed_over_for_at_most_the_starvation_bound():
    windows = [W("batch", waiting_since=70.0), W("live", interactive=True, waiting_since=99.0)]
    assert first(windows, now=99.999, starvation_bound_s=30.0) == "live"
    assert first(windows, now=100.0, starvation_bound_s=30.0) == "batch"


def test_a_starved_batch_window_runs_before_a_new_task():
    windows = [W("starved", served=40, waiting_since=70.0), W("new", served=0, waiting_since=99.0)]
    assert first(windows, now=100.0, starvation_bound_s=30.0) == "starved"


def test_an_interactive_batch_is_never_held_back():
    live = W("live", interactive=True)
    assert policy(max_wait_s=3.0).schedule([live], preparing=5, now=10.0) == Run([live])


def test_a_hold_never_runs_past_a_windows_deadline():
    window = W("a", deadline=11.5)
    assert policy(max_wait_s=3.0).schedule([window], preparing=5, now=10.0) == Hold([window], until=11.5)


def test_claimed_tasks_are_prepared_interactive_first_then_smallest_then_earliest():
    claims = {"long": (False, 5_000_000, 1), "clip": (False, 120_000, 14), "live": (True, 900_000, 15),
              "twin": (False, 120_000, 16)}
    assert sorted(claims, key=lambda name: preparation_rank(*claims[name])) == ["live", "clip", "twin", "long"]


# -- step length -------------------------------------------------------------------------------


def test_a_batch_holds_as_many_windows_as_fit_in_a_step():
    windows = [W(str(i), step_cost_s=1.5) for i in range(4)]
    assert names(policy(max_step_s=4.0).schedule(windows, preparing=0, now=0.0)) == ["0", "1"]


def test_a_window_costlier_than_a_step_runs_alone_and_at_once():
    windows = [W("whole", step_cost_s=9.0), W("other", step_cost_s=9.0)]
    assert policy(max_step_s=4.0).schedule(windows, preparing=3, now=0.0) == Run([windows[0]])


def test_cheap_windows_fill_the_batch_to_max_batch_size():
    windows = [W(str(i), step_cost_s=0.01) for i in range(6)]
    plan = policy(max_batch_size=4, max_step_s=4.0).schedule(windows, preparing=0, now=0.0)
    assert names(plan) == ["0", "1", "2", "3"]


def test_a_batch_that_no_more_windows_fit_is_full_and_not_held_back():
    windows = [W("a", step_cost_s=2.5)]
    assert policy(max_wait_s=3.0, max_step_s=4.0).schedule(windows, preparing=2, now=0.0) == Run(windows)
