"""Training data: filters, the split by episode, image checks, the prompt cache."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from pixelpilot.agent.sample import StepSample
from pixelpilot.errors import PixelpilotError
from pixelpilot.train.config import SFTConfig
from pixelpilot.train.data import (
    DataError,
    PromptCache,
    batches,
    conversation_for,
    covered_click,
    load_split,
)


def cfg(data: Path, **kw: object) -> SFTConfig:
    return SFTConfig(**({"data": str(data), "model": "m", "out": "o"} | kw))


def copy_with_one_failure(src: Path, dst: Path) -> str:
    """A copy of ``src`` whose first click-test episode ended in failure."""
    shutil.copytree(src, dst)
    episode = sorted(dst.glob("miniwob-click-test/seed-*"))[0]
    path = episode / "trajectory.jsonl"
    lines = path.read_text().splitlines()
    end = json.loads(lines[-1])
    end["success"] = False
    path.write_text("\n".join([*lines[:-1], json.dumps(end)]) + "\n")
    return episode.relative_to(dst).as_posix()


def test_only_successful_episodes_train_by_default(click_data: Path, tmp_path: Path) -> None:
    failed = copy_with_one_failure(click_data, tmp_path / "d")
    split = load_split(cfg(tmp_path / "d"))
    assert len(split.train) == 7 and failed not in {s.episode for s in split.train}
    assert split.counts["loaded"] == 8 and split.counts["successful"] == 7
    assert len(load_split(cfg(tmp_path / "d", include_failed=True)).train) == 8


def test_filters_by_task_and_action_type(click_data: Path) -> None:
    split = load_split(cfg(click_data, tasks="miniwob/click-test"))
    assert {s.task for s in split.train} == {"miniwob/click-test"}
    with pytest.raises(DataError, match="none in the data"):
        load_split(cfg(click_data, tasks="miniwob/nope"))
    with pytest.raises(DataError, match="no sample left"):
        load_split(cfg(click_data, action_types="type,scroll"))
    assert len(load_split(cfg(click_data, action_types="click")).train) == 8


def test_task_weights_repeat_a_tasks_training_steps(click_data: Path) -> None:
    plain = load_split(cfg(click_data, val_fraction=0.25))
    tasks = sorted({s.task for s in plain.train})
    weighted = load_split(cfg(click_data, val_fraction=0.25, task_weights=f"{tasks[0]}=3"))
    want = [s.id for s in plain.train for _ in range(3 if s.task == tasks[0] else 1)]
    assert [s.id for s in weighted.train] == want and len(want) > len(plain.train)
    assert [s.id for s in weighted.val] == [s.id for s in plain.val]  # validation not repeated
    assert weighted.counts["train"] == len(want)
    with pytest.raises(DataError, match="no training step of that task"):
        load_split(cfg(click_data, task_weights="miniwob/nope=2"))
    for bad in ("miniwob/click-test", "miniwob/click-test=0", "x=1.5", "=2"):
        with pytest.raises(PixelpilotError, match="--task-weights .*TASK=N"):
            cfg(click_data, task_weights=bad)


def _click(x: int, y: int, target: tuple[int, int, int, int] | None) -> StepSample:
    return StepSample(id="e/0", episode="e", task="miniwob/click-test-2", step=0, image="s.png",
                      instruction="Click button ONE.", gold=({"type": "click", "x": x, "y": y},),
                      screen=(160, 210), target=target)  # fmt: skip


def test_covered_click_is_a_click_off_its_boxs_centre() -> None:
    box = (40, 60, 80, 80)  # centre (60, 70), half-size 20 x 10
    assert not covered_click(_click(60, 70, box))
    assert not covered_click(_click(65, 72, box))  # 0.25 and 0.2 of the half-size
    assert covered_click(_click(75, 70, box))  # 0.75 of the half-width: ONE under TWO
    assert covered_click(_click(60, 78, box))  # 0.8 of the half-height
    assert not covered_click(_click(75, 70, None))  # no recorded box
    typing = replace(_click(75, 70, box), gold=({"type": "type", "content": "x"},))
    assert not covered_click(typing)


def test_covered_weight_repeats_the_covered_clicks(click_data: Path, tmp_path: Path) -> None:
    shutil.copytree(click_data, tmp_path / "d")
    path = sorted((tmp_path / "d").glob("miniwob-click-test/seed-*"))[0] / "trajectory.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    step = lines[1]
    x, y = step["actions"][0]["x"], step["actions"][0]["y"]
    step["target"] = [x - 2, y - 10, x + 20, y + 10]  # the click near the box's left edge
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    plain = load_split(cfg(tmp_path / "d"))
    covered = [s.id for s in plain.train if covered_click(s)]
    assert len(covered) == 1
    weighted = load_split(cfg(tmp_path / "d", covered_weight=4,
                              task_weights="miniwob/click-test=2"))  # fmt: skip
    want = [s.id for s in plain.train
            for _ in range((2 if s.task == "miniwob/click-test" else 1)
                           * (4 if s.id in covered else 1))]  # fmt: skip
    assert [s.id for s in weighted.train] == want
    assert want.count(covered[0]) == 8
    with pytest.raises(PixelpilotError, match="--covered-weight must be a whole number >= 1"):
        cfg(click_data, covered_weight=0)


def test_split_by_episode_is_deterministic_and_disjoint(click_data: Path) -> None:
    a = load_split(cfg(click_data, val_fraction=0.25))
    b = load_split(cfg(click_data, val_fraction=0.25, seed=7))
    assert [s.id for s in a.val] == [s.id for s in b.val] and len(a.val) == 2
    assert not {s.episode for s in a.train} & {s.episode for s in a.val}


def test_errors_for_bad_data(click_data: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(PixelpilotError, match="no samples"):
        load_split(cfg(tmp_path / "empty"))
    copy_with_one_failure(click_data, tmp_path / "all-failed")
    for path in (tmp_path / "all-failed").glob("*/seed-*/trajectory.jsonl"):
        lines = path.read_text().splitlines()
        end = json.loads(lines[-1]) | {"success": False}
        path.write_text("\n".join([*lines[:-1], json.dumps(end)]) + "\n")
    with pytest.raises(DataError, match="no step of a successful episode"):
        load_split(cfg(tmp_path / "all-failed"))
    shutil.copytree(click_data, tmp_path / "no-image")
    next((tmp_path / "no-image").glob("*/seed-*/step-0000.png")).unlink()
    with pytest.raises(PixelpilotError, match="missing|not found"):
        load_split(cfg(tmp_path / "no-image"))


def test_batches_are_seeded_epochs_and_resumable() -> None:
    it = batches(5, 2, seed=3)
    first = [next(it) for _ in range(5)]
    assert sorted(sum((b for _, b in first[:2]), []) + first[2][1][:1]) == [0, 1, 2, 3, 4]
    assert [e for e, _ in first] == [0, 0, 0, 1, 1]
    later = batches(5, 2, seed=3, start=3)
    assert next(later) == first[3]


def test_prompt_cache_builds_once_and_reuses_disk(
    click_data: Path, tiny_xs: str, tmp_path: Path
) -> None:
    from pixelpilot.vlm import load

    vlm = load(tiny_xs)
    config = cfg(click_data)
    sample = load_split(config).train[0]
    build = lambda s: conversation_for(s, vlm.profile, config)  # noqa: E731
    cache = PromptCache(vlm, build, str(tmp_path / "cache"))
    first = cache.get(sample)
    assert cache.get(sample) is first and (cache.hits, cache.misses) == (1, 1)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    again = PromptCache(vlm, build, str(tmp_path / "cache"))
    loaded = again.get(sample)
    assert (again.hits, again.misses) == (1, 0)
    assert all(bool((loaded[k] == first[k]).all()) for k in first)


def test_prompt_cache_keeps_at_most_its_memory_budget(click_data: Path, tiny_xs: str) -> None:
    from pixelpilot.vlm import load

    vlm = load(tiny_xs)
    config = cfg(click_data)
    samples = load_split(config).train[:3]
    build = lambda s: conversation_for(s, vlm.profile, config)  # noqa: E731
    unbounded = PromptCache(vlm, build)
    sizes = []
    for s in samples:
        before = unbounded.memory_bytes
        unbounded.get(s)
        sizes.append(unbounded.memory_bytes - before)
    assert min(sizes) > 0
    budget = (sizes[0] + sizes[1] // 2) / 2**20  # room for the first sample only
    bounded = PromptCache(vlm, build, memory_mib=budget)
    first = [bounded.get(s) for s in samples]
    assert bounded.memory_bytes == sizes[0]
    again = [bounded.get(s) for s in samples]
    assert again[0] is first[0] and again[1] is not first[1]  # encoded again, not kept
    assert (bounded.hits, bounded.misses) == (1, 5)
    assert all(bool((again[1][k] == first[1][k]).all()) for k in first[1])  # same inputs


@pytest.fixture(scope="module")
def login_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.train.conftest import record

    return record(tmp_path_factory.mktemp("jitter") / "login", "miniwob/login-user", 3)


def _point(text: str, sample: object) -> tuple[int, int] | None:
    from pixelpilot.agent.sample import parse_answer

    action = parse_answer(text, sample.coords, sample.screen).actions[0].to_dict()
    return (action["x"], action["y"]) if "x" in action else None


def test_history_jitter_moves_history_clicks_within_their_boxes(login_data: Path) -> None:
    from pixelpilot.train.data import prompt_key

    plain = load_split(cfg(login_data))
    moved = load_split(cfg(login_data, history_jitter=True, seed=3))
    boxes = {(s.episode, s.step): s.target for s in plain.train}
    changed = 0
    for a, b in zip(plain.train, moved.train, strict=True):
        assert (a.id, a.gold, a.image, a.gold_response) == (b.id, b.gold, b.image, b.gold_response)
        assert [img for _, img in a.history] == [img for _, img in b.history]
        for i, ((old, _), (new, _)) in enumerate(zip(a.history, b.history, strict=True)):
            before, after = _point(old, a), _point(new, b)
            if before is None:  # a typing step keeps its text
                assert new == old
                continue
            x1, y1, x2, y2 = boxes[(a.episode, i)]
            assert x1 <= after[0] <= x2 and y1 <= after[1] <= y2, (new, boxes[(a.episode, i)])
            changed += after != before
    assert changed >= 10  # 3 episodes of 4 prompts with history: 6 history clicks each
    again = load_split(cfg(login_data, history_jitter=True, seed=3))
    other = load_split(cfg(login_data, history_jitter=True, seed=4))
    assert [s.history for s in again.train] == [s.history for s in moved.train]
    assert [s.history for s in other.train] != [s.history for s in moved.train]
    assert prompt_key(cfg(login_data)) != prompt_key(cfg(login_data, history_jitter=True))
