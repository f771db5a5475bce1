"""The scheduler core, driven synchronously: no thread is started and no clock is read. Each
step the test asks for a plan at a time it chooses, runs the batch through a scripted engine,
and hands the outcomes back, as the engine loop does."""

from __future__ import annotations

from pathlib import Path

import pytest

from asr_server.config import DecodingOptions
from asr_server.errors import Failure
from asr_server.scheduling.core import Priority, SchedulerCore, Task
from asr_server.scheduling.policy import BatchPolicy, Hold, Idle, Run
from asr_server.scheduling.preparation import prepare
from asr_server.whisper.batch_decoding import decode_windows
from asr_server.whisper.transcription import TrimRule
from scripted_engine import ScriptedEngine, tone

ENGLISH = DecodingOptions(language="en", speech_guard=False)
STEP_S = 1.0  # the scripted time of an engine step


class Driver:
    """A core, a scripted engine and a scripted clock: what the engine loop does, in the open."""

    def __init__(self, engine: ScriptedEngine, tmp_path: Path, max_batch_size: int = 8,
                 starvation_bound_s: float = 30.0, max_active_tasks: int = 32, max_wait_s: float = 0.0) -> None:
        self.engine = engine
        self.tmp_path = tmp_path
        self.core = SchedulerCore(BatchPolicy(max_batch_size, max_wait_s, starvation_bound_s), max_active_tasks)
        self.now = 0.0
        self.finished: list[str] = []
        self.failed: dict[str, Failure] = {}

    def add(self, task_id: str, seconds: float, priority: Priority = Priority.BATCH, model: str = "",
            deadline: float | None = None, loudness: float = 0.3, prompt_bucket: int | None = None,
            trim: TrimRule | None = None) -> Task:
        path = tone(self.tmp_path / f"{task_id}.wav", seconds, loudness)
        transcription = prepare(path, ENGLISH, self.engine, trim=trim, prompt_bucket=prompt_bucket)
        task = Task(task_id, transcription, priority=priority, model=model, deadline=deadline)
        self.core.claimed([task_id])
        assert self.core.prepared(task_id, task, self.now) is None
        return task

    def step(self) -> list[str]:
        """One plan executed; the ids of the tasks whose windows it ran."""
        plan = self.core.schedule(self.now)
        assert isinstance(plan, Run), plan
        outcomes = decode_windows(self.engine, [c.window for c in plan.batch])
        self.now += STEP_S
        self._record(self.core.update(plan, outcomes, self.now, STEP_S))
        return [c.task.task_id for c in plan.batch]

    def _record(self, ended) -> None:
        for end in ended:
            if end.failure is None:
                self.finished.append(end.task.task_id)
            else:
                self.failed[end.task.task_id] = end.failure

    def run_out(self, limit: int = 500) -> list[list[str]]:
        steps = []
        while not isinstance(self.core.schedule(self.now), Idle):
            steps.append(self.step())
            assert len(steps) < limit
        return steps


@pytest.fixture
def engine(hf_tokenizer) -> ScriptedEngine:
    return ScriptedEngine(hf_tokenizer)


def clip_after_long_files(engine, tmp_path, steps: int) -> Driver:
    """Thirteen long files, ``steps`` steps of one window, then a 4 s clip."""
    drive = Driver(engine, tmp_path, max_batch_size=1)
    for i in range(13):
        drive.add(f"long{i}", 95, loudness=0.1 + i / 20)
    for _ in range(steps):
        drive.step()
    drive.add("clip", 4)
    return drive


def test_a_short_clip_behind_long_files_runs_at_the_next_step(engine, tmp_path):
    drive = clip_after_long_files(engine, tmp_path, steps=20)
    assert drive.step() == ["clip"]


def test_a_new_task_waits_only_for_the_tasks_that_have_had_nothing_yet(engine, tmp_path):
    drive = clip_after_long_files(engine, tmp_path, steps=8)
    assert [drive.step()[0] for _ in range(6)] == [f"long{i}" for i in range(8, 13)] + ["clip"]


def test_long_files_advance_together_a_window_each(engine, tmp_path):
    drive = Driver(engine, tmp_path, max_batch_size=1)
    for i in range(3):
        drive.add(f"long{i}", 95, loudness=0.2 + i / 10)
    steps = drive.run_out()
    assert [s[0] for s in steps[:6]] == ["long0", "long1", "long2"] * 2


def test_interactive_windows_run_before_batch_windows(engine, tmp_path):
    drive = Driver(engine, tmp_path, max_batch_size=1)
    drive.add("file", 95)
    drive.step()
    drive.add("live", 95, priority=Priority.INTERACTIVE)
    assert [drive.step() for _ in range(4)] == [["live"]] * 4


def test_earlier_deadlines_run_first(engine, tmp_path):
    drive = Driver(engine, tmp_path, max_batch_size=1)
    drive.add("later", 3, deadline=50.0)
    drive.add("none", 3)
    drive.add("sooner", 3, deadline=20.0)
    assert [drive.step() for _ in range(3)] == [["sooner"], ["later"], ["none"]]


def test_a_batch_task_is_passed_over_for_interactive_work_for_at_most_the_bound(engine, tmp_path):
    drive = Driver(engine, tmp_path, max_batch_size=1, starvation_bound_s=5.0)
    drive.add("file", 95)
    drive.add("live", 300, priority=Priority.INTERACTIVE)
    steps = [drive.step()[0] for _ in range(8)]
    # The file waits from t=0: passed over at t=0..4, run at t=5, when it has waited 5 s.
    assert steps[:6] == ["live"] * 5 + ["file"]


def test_windows_of_different_models_never_share_a_batch(engine, tmp_path):
    drive = Driver(engine, tmp_path)
    for i in range(3):
        drive.add(f"a{i}", 3, model="base")
        drive.add(f"b{i}", 3, model="tiny.en")
    for step in drive.run_out():
        assert len({task_id[0] for task_id in step}) == 1, step
    assert sorted(drive.finished) == sorted(f"{m}{i}" for m in "ab" for i in range(3))
    assert set(drive.core.stats()["steps_by_model"]) == {"base", "tiny.en"}  # no "base+tiny.en"


def test_a_failed_engine_call_fails_only_the_tasks_of_its_batch(engine, tmp_path):
    drive = Driver(engine, tmp_path, max_batch_size=2)
    for name in ("x", "y", "z"):
        drive.add(name, 3)
    plan = drive.core.schedule(drive.now)
    assert isinstance(plan, Run)
    ended = drive.core.update_failed(plan, Failure.of(RuntimeError("engine")))
    assert sorted(end.task.task_id for end in ended) == ["x", "y"]
    drive.run_out()
    assert drive.finished == ["z"]


def test_a_cancelled_active_task_leaves_at_once_and_is_never_planned(engine, tmp_path):
    drive = Driver(engine, tmp_path, max_batch_size=1)
    drive.add("keep", 95)
    drive.add("drop", 95)
    drive.step()
    assert drive.core.cancel("drop").task_id == "drop"
    assert {task_id for step in drive.run_out() for task_id in step} == {"keep"}
    assert drive.finished == ["keep"]


def test_a_task_cancelled_while_being_prepared_is_dropped_when_it_arrives(engine, tmp_path):
    core = SchedulerCore(BatchPolicy(8, 0.0), 4)
    core.claimed(["t"])
    assert core.cancel("t") is None
    task = Task("t", prepare(tone(tmp_path / "t.wav", 3, 0.3), ENGLISH, engine))
    assert core.prepared("t", task, 0.0) is task
    assert core.held == 0 and isinstance(core.schedule(0.0), Idle)


def test_admission_leaves_room_for_max_active_tasks_and_none_while_draining(engine, tmp_path):
    drive = Driver(engine, tmp_path, max_active_tasks=3)
    drive.add("a", 3)
    drive.core.claimed(["b"])
    assert drive.core.room() == 1
    drive.core.drain()
    assert drive.core.room() == 0
    drive.run_out()
    assert drive.finished == ["a"], "a draining core still finishes what it holds"


def test_a_batch_waits_for_company_being_prepared_until_max_wait(engine, tmp_path):
    drive = Driver(engine, tmp_path, max_wait_s=2.0)
    drive.add("a", 3)
    drive.core.claimed(["b"])
    assert isinstance(drive.core.schedule(0.0), Hold)
    assert isinstance(drive.core.schedule(2.0), Run)


def test_the_counters_say_windows_per_step_and_engine_time_by_priority(engine, tmp_path):
    drive = Driver(engine, tmp_path, max_batch_size=2)
    drive.add("a", 3)
    drive.add("b", 3)
    drive.add("live", 3, priority=Priority.INTERACTIVE)
    drive.run_out()
    stats = drive.core.stats()
    assert stats["batch_sizes"] == {"1": 1, "2": 1} and stats["mean_windows_per_step"] == 1.5
    # The live window leads the first step and takes a batch window with it.
    assert stats["engine_seconds_by_priority"] == {"batch": 1.5, "interactive": 0.5}


def test_whole_windows_not_measured_yet_run_alone_then_as_many_as_fit(engine, tmp_path):
    drive = Driver(engine, tmp_path)
    drive.core.policy.max_step_s = 2.5  # each scripted step takes STEP_S = 1 s
    for i in range(6):
        drive.add(f"long{i}", 95, loudness=0.1 + i / 20)
    assert len(drive.step()) == 1  # nothing measured: one window, which measures the kind
    assert len(drive.step()) == 2  # 1 s a window: two fit in 2.5 s


def test_trimmed_windows_fill_a_batch_whatever_the_step_budget(engine, tmp_path):
    drive = Driver(engine, tmp_path)
    drive.core.policy.max_step_s = 0.5  # below one scripted step
    for i in range(6):
        drive.add(f"clip{i}", 3, trim=TrimRule(margin_frames=800))
    assert len(drive.step()) == 6  # a newcomer would queue behind these short clips anyway


def test_trimmed_and_whole_windows_never_share_a_step(hf_tokenizer, tmp_path):
    from asr_server.config import SchedulerConfig  # noqa: F401  (the defaults trim)

    engine = ScriptedEngine(hf_tokenizer)
    drive = Driver(engine, tmp_path)
    drive.add("clip", 3, trim=TrimRule(margin_frames=800))
    drive.add("long", 95, trim=TrimRule(margin_frames=800))
    steps = drive.run_out()
    assert steps[0] == ["clip"] and steps[1] == ["long"]


@pytest.mark.parametrize("bucket, shared", [(None, False), (32, True)])
def test_prompt_buckets_let_windows_of_different_prompt_lengths_share_a_batch(engine, tmp_path, bucket, shared):
    drive = Driver(engine, tmp_path)
    for task_id, told in (("a", 70), ("b", 90)):  # previous text of two recordings, in tokens
        task = drive.add(task_id, 95, prompt_bucket=bucket)
        task.transcription._all_tokens.extend([220] * told)
    plan = drive.core.schedule(drive.now)
    assert isinstance(plan, Run)
    assert (len(plan.batch) == 2) == shared


def test_models_take_turns_when_a_burst_for_one_is_waiting(engine, tmp_path):
    drive = Driver(engine, tmp_path, max_batch_size=2)
    for i in range(8):
        drive.add(f"a{i}", 3, model="base")
    assert drive.step() == ["a0", "a1"]
    drive.add("b0", 3, model="tiny.en")
    assert [drive.step() for _ in range(3)] == [["a2", "a3"], ["b0"], ["a4", "a5"]]


def test_a_model_idle_for_a_while_earns_no_credit_for_it(engine, tmp_path):
    drive = Driver(engine, tmp_path, max_batch_size=1)
    drive.add("a", 95, model="base")
    for _ in range(2):
        drive.step()  # base alone has had 2 s of the engine
    drive.add("b", 95, model="tiny.en")
    # tiny.en starts level with base (not 2 s behind): they alternate, the less served first.
    assert [drive.step()[0] for _ in range(4)] == ["b", "a", "b", "a"]
