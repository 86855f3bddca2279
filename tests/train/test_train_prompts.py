"""The agent, offline evaluation and training show a model the same prompt for a recorded step,
and the SFT target, read back with the model's profile, lands on the recorded pixel."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.train.conftest import record

from pixelpilot.eval.datasets import load_samples


@pytest.fixture(scope="module")
def sequence_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two-step expert episodes (click-button-sequence), so the prompt has history."""
    return record(tmp_path_factory.mktemp("seq") / "d", "miniwob/click-button-sequence", 1)


def test_agent_offline_and_training_prompts_are_equal(sequence_data: Path, tiny_xs: str) -> None:
    from PIL import Image

    from pixelpilot.agent.policy import VLMPolicy
    from pixelpilot.agent.sample import rewrite_answer
    from pixelpilot.envs.base import Observation
    from pixelpilot.eval.offline import conversation as offline_conversation
    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.data import PromptCache, conversation_for
    from pixelpilot.vlm import load

    vlm = load(tiny_xs)
    sample = max(load_samples(sequence_data, "trajectory"), key=lambda s: s.step)
    assert sample.step == 1 and len(sample.history) == 1
    # the agent: the episode so far as its own history (answers in its own frame)
    policy = VLMPolicy(vlm)
    policy.reset(sample.instruction)
    answer, shot = sample.history[0]
    mine = rewrite_answer(answer, sample.coords, vlm.profile.coords, sample.screen)
    assert mine != answer  # the tiny model's pixel limits differ from the recording's
    with Image.open(shot) as im:
        policy.remember(im.convert("RGB"), mine)
    with Image.open(sample.image) as im:
        agent = policy.conversation(Observation(im.convert("RGB"), sample.screen))
    offline = offline_conversation(sample, vlm.profile)
    config = SFTConfig(data=str(sequence_data), model=tiny_xs, out="unused")
    training = conversation_for(sample, vlm.profile, config)
    texts = {vlm.prompt_text(c) for c in (agent, offline, training)}
    assert len(texts) == 1
    cached = PromptCache(vlm, lambda s: training).get(sample)
    for enc in (vlm.encode_prompt(agent), vlm.encode_prompt(offline)):
        assert set(enc) == set(cached)
        assert all(bool((enc[k] == cached[k]).all()) for k in enc)


def test_history_without_thoughts_is_what_a_short_answer_model_sees(
    sequence_data: Path, tiny_xs: str
) -> None:
    """A model trained to answer without a Thought has none in its own history at run time;
    ``history_thoughts=False`` trains on that prompt, and the default keeps the recorded one."""
    from PIL import Image

    from pixelpilot.agent.policy import VLMPolicy
    from pixelpilot.agent.sample import rewrite_answer
    from pixelpilot.envs.base import Observation
    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.data import conversation_for, prompt_key
    from pixelpilot.vlm import load

    vlm = load(tiny_xs)
    sample = max(load_samples(sequence_data, "trajectory"), key=lambda s: s.step)
    answer, shot = sample.history[0]
    assert answer.startswith("Thought:")  # the expert writes one
    short = rewrite_answer(answer, sample.coords, vlm.profile.coords, sample.screen, False)
    assert short.startswith("Action: click(") and "Thought" not in short
    policy = VLMPolicy(vlm)
    policy.reset(sample.instruction)
    with Image.open(shot) as im:
        policy.remember(im.convert("RGB"), short)
    with Image.open(sample.image) as im:
        agent = vlm.prompt_text(policy.conversation(Observation(im.convert("RGB"), sample.screen)))
    base = dict(data=str(sequence_data), model=tiny_xs, out="unused")
    bare, full = SFTConfig(**base, history_thoughts=False), SFTConfig(**base)
    assert vlm.prompt_text(conversation_for(sample, vlm.profile, bare)) == agent
    with_thought = vlm.prompt_text(conversation_for(sample, vlm.profile, full))
    assert with_thought != agent
    assert answer.split("\n")[0] in with_thought
    assert prompt_key(bare) != prompt_key(full)  # cached prompts of the two are not mixed up


def test_offline_evaluation_shows_the_history_the_checkpoint_declares(
    sequence_data: Path, tiny_xs: str, tmp_path: Path
) -> None:
    """A checkpoint trained without Thoughts in its history declares it, and offline
    evaluation then prompts it as training and the agent do; SFT writes the declaration."""
    import shutil

    from pixelpilot.eval.offline import conversation as offline_conversation
    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.data import conversation_for
    from pixelpilot.train.sft import train_sft
    from pixelpilot.vlm import load
    from pixelpilot.vlm.profiles import Declaration, read_declaration, write_declaration

    sample = max(load_samples(sequence_data, "trajectory"), key=lambda s: s.step)
    folder = Path(shutil.copytree(tiny_xs, tmp_path / "bare"))
    write_declaration(folder, Declaration(history_thoughts=False))
    vlm = load(str(folder))
    bare = SFTConfig(data=str(sequence_data), model=str(folder), out="unused",
                     history_thoughts=False)  # fmt: skip
    offline = vlm.prompt_text(offline_conversation(sample, vlm.profile))
    assert offline == vlm.prompt_text(conversation_for(sample, vlm.profile, bare))
    assert "Thought" not in offline.split(sample.instruction, 1)[1]
    assert "Thought:" in vlm.prompt_text(offline_conversation(sample, load(tiny_xs).profile))

    config = SFTConfig(data=str(sequence_data), model=tiny_xs, out=str(tmp_path / "run"),
                       max_steps=1, batch_size=2, history_thoughts=False,
                       progress=False)  # fmt: skip
    result = train_sft(config)
    assert read_declaration(result.checkpoint).history_thoughts is False


def test_a_checkpoint_trained_on_fewer_screenshots_is_prompted_with_them(
    sequence_data: Path, tiny_xs: str, tmp_path: Path
) -> None:
    """``--history-images 1``: training shows only the current screenshot, the checkpoint
    declares it, and the agent and offline evaluation then prompt it the same way."""
    from PIL import Image

    from pixelpilot.agent.policy import VLMPolicy
    from pixelpilot.agent.sample import rewrite_answer
    from pixelpilot.envs.base import Observation
    from pixelpilot.eval.offline import conversation as offline_conversation
    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.data import conversation_for, prompt_key
    from pixelpilot.train.sft import train_sft
    from pixelpilot.vlm import load
    from pixelpilot.vlm.profiles import read_declaration

    sample = max(load_samples(sequence_data, "trajectory"), key=lambda s: s.step)
    assert len(sample.history) == 1
    base = load(tiny_xs)
    assert base.profile.history_images == 5  # the family's: the earlier screenshot is shown
    both = base.encode_prompt(sample.conversation(base.profile))
    one = base.encode_prompt(sample.conversation(base.profile, history_images=1))
    assert one["input_ids"].shape[1] < both["input_ids"].shape[1]

    base_config = dict(data=str(sequence_data), model=tiny_xs, max_steps=1, batch_size=2,
                       progress=False)  # fmt: skip
    config = SFTConfig(**base_config, out=str(tmp_path / "one"), history_images=1)
    assert prompt_key(config) != prompt_key(SFTConfig(**base_config, out="unused"))
    result = train_sft(config)
    assert read_declaration(result.checkpoint).history_images == 1
    trained = load(result.checkpoint)
    assert trained.profile.history_images == 1
    again = SFTConfig(data=str(sequence_data), model=result.checkpoint, out="unused")
    training = conversation_for(sample, trained.profile, again)  # from the declaration
    policy = VLMPolicy(trained)
    policy.reset(sample.instruction)
    answer, shot = sample.history[0]
    with Image.open(shot) as im:
        policy.remember(
            im.convert("RGB"),
            rewrite_answer(answer, sample.coords, trained.profile.coords, sample.screen),
        )
    with Image.open(sample.image) as im:
        agent = policy.conversation(Observation(im.convert("RGB"), sample.screen))
    for conv in (training, offline_conversation(sample, trained.profile), agent):
        enc = trained.encode_prompt(conv)
        assert set(enc) == set(one) and all(bool((enc[k] == one[k]).all()) for k in enc)


def test_sft_target_parses_back_to_the_recorded_pixel(sequence_data: Path, tiny_xs: str) -> None:
    from pixelpilot.tools.frames import CoordinateFrame
    from pixelpilot.train.data import parse_for, target_for
    from pixelpilot.vlm import load

    profile = load(tiny_xs).profile
    for sample in load_samples(sequence_data, "trajectory"):
        text = target_for(sample, profile)
        back = parse_for(sample, text, profile).actions[0].to_dict()
        gold = sample.gold[0]
        # one model unit of the tiny model's frame, in screen pixels
        mw, mh = CoordinateFrame.of(profile.coords).model_size(sample.screen)
        ux, uy = sample.screen[0] / mw, sample.screen[1] / mh
        assert abs(back["x"] - gold["x"]) <= ux / 2 + 1 and abs(back["y"] - gold["y"]) <= uy / 2 + 1
        x1, y1, x2, y2 = sample.target
        assert x1 <= back["x"] <= x2 and y1 <= back["y"] <= y2
        assert text.startswith("Thought: ") and sample.gold_response.split("\n")[0] in text
