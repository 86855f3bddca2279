"""The reading objective: which image tokens read which texts, that its gradient reaches the
vision side only, and that a few steps of it teach the image tokens their texts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pixelpilot.train.pointing import CELL
from pixelpilot.train.reading import label_cells, length_class


def test_each_text_is_read_at_the_cell_under_its_centre_and_shared_cells_are_dropped() -> None:
    cols = math.ceil(160 / CELL)
    labels = [
        ("ONE", (10, 60, 50, 100)),  # centre (30, 80): row 2, column 1
        ("TWO", (100, 150, 140, 190)),  # centre (120, 170): row 6, column 4
        ("lorem", (0, 0, 20, 10)),  # centre (10, 5): cell 0 ...
        ("ipsum", (0, 0, 30, 12)),  # ... shared with (15, 6): neither is kept
        ("far", (170, 10, 200, 20)),  # centre outside the screen
    ]
    cells, count = label_cells(labels, (160, 210))
    assert count == cols * math.ceil(210 / CELL)
    assert cells == [(2 * cols + 1, "ONE"), (6 * cols + 4, "TWO")]


def _setup(tmp_path: Path, count: int = 8) -> tuple:
    from pixelpilot.train.config import SFTConfig, with_model_prompt
    from pixelpilot.train.data import PromptCache, conversation_for, load_split
    from pixelpilot.train.synthetic import write_synthetic
    from pixelpilot.vlm import load
    from pixelpilot.vlm.tiny import build_tiny

    model = build_tiny(tmp_path / "m", arch="kimi_k25", size="xs", seed=0)
    data = write_synthetic(tmp_path / "syn", count, seed=0, kinds=("button", "link"))
    config = SFTConfig(data=str(data), model=str(model), out=str(tmp_path / "run"), max_steps=30,
                       batch_size=4, lr=3e-3, prompt_kind="grounding", history_thoughts=False,
                       progress=False)  # fmt: skip
    config = with_model_prompt(config)
    vlm = load(str(model))
    cache = PromptCache(vlm, lambda s: conversation_for(s, vlm.profile, config))
    return model, config, vlm, cache, list(load_split(config).train)


def test_the_read_term_trains_the_vision_side_only(tmp_path: Path) -> None:
    """Its rows are the image tokens of the labelled cells as the decoder receives them: its
    gradient reaches the vision tower and the projector, and no decoder weight."""
    from pixelpilot.train.pointing import PointingObjective

    model, config, vlm, cache, samples = _setup(tmp_path, 4)
    assert all(s.meta.get("labels") for s in samples)
    objective = PointingObjective(vlm, config, cache, 20.0, False, 0.0, 0.0, 0.0, read_weight=1.0)
    objective.sample_losses(samples)  # the forward pass records the embeddings and the ids
    read, figures = objective.reader.loss(objective._seen["input_ids"], samples)
    expected = sum(len(label_cells(s.meta["labels"], s.screen)[0]) for s in samples)
    assert figures["read_texts"] == expected > 0
    assert read.item() == pytest.approx(math.log(len(vlm.tokenizer)), rel=0.35)  # near uniform
    vlm.model.zero_grad()
    read.backward()
    grads = {n: p.grad for n, p in vlm.model.named_parameters()}
    vision = [g for n, g in grads.items() if "vision" in n and g is not None]
    projector = [g for n, g in grads.items() if "mm_projector" in n and g is not None]
    decoder = [g for n, g in grads.items() if "language_model" in n and g is not None]
    assert vision and any(g.abs().sum() > 0 for g in vision)
    assert projector and any(g.abs().sum() > 0 for g in projector)
    assert all(g.abs().sum() == 0 for g in decoder)  # the table is detached, no layer is used


def test_the_bag_holds_the_tokens_of_the_text_alone_and_after_a_space(tmp_path: Path) -> None:
    from pixelpilot.train.reading import ReadingObjective

    _, _, vlm, _, _ = _setup(tmp_path, 1)
    reader = ReadingObjective(vlm)
    tok = vlm.tokenizer
    bag = reader.bag("ONE")
    assert set(tok.encode("ONE", add_special_tokens=False)) <= set(bag)
    assert set(tok.encode(" ONE", add_special_tokens=False)) <= set(bag)
    assert bag == sorted(set(bag))


def test_a_few_steps_teach_the_image_tokens_their_texts(tmp_path: Path) -> None:
    """The read term alone (no pointing, look or copy) lowers its loss on the same screens
    and adds no tensor to the checkpoint."""
    from tests.train.conftest import tensor_names

    from pixelpilot.train.pointing import train_pointing_sft

    model, config, _, _, _ = _setup(tmp_path)
    result = train_pointing_sft(config, sigma=20.0, thought=False, weight=0.0, read_weight=1.0)
    steps = [r for r in result.history if "read_loss" in r]
    assert len(steps) == 30
    first = sum(r["read_loss"] for r in steps[:5]) / 5
    last = sum(r["read_loss"] for r in steps[-5:]) / 5
    assert last < first - 0.5, (first, last)
    assert tensor_names(result.checkpoint) == tensor_names(model)


def test_each_labelled_cell_attends_to_the_word_naming_it_or_to_itself(tmp_path: Path) -> None:
    """The match objective's targets on real synthetic screens: the target's cell attends to
    the instruction's tokens of its text, every other labelled cell to itself."""
    from pixelpilot.train.pointing import PointingObjective, target_cell
    from pixelpilot.train.reading import MatchPairs

    _, config, vlm, cache, samples = _setup(tmp_path, 6)
    objective = PointingObjective(vlm, config, cache, 20.0, False, 0.0, 0.0, 0.0, match_weight=1.0)
    objective.sample_losses(samples)
    ids = objective._seen["input_ids"]
    pairs = objective.matcher.pairs(ids, samples)
    assert isinstance(objective.matcher, MatchPairs)
    named = 0
    for b, sample in enumerate(samples):
        cells, count = label_cells(sample.meta["labels"], sample.screen)
        rows = [(q, keys) for row, q, keys in pairs if row == b]
        assert len(rows) == len(cells) > 1  # labelled cells: the target's, and distractors'
        images = (ids[b] == objective.image_token).nonzero().flatten().tolist()[-count:]
        gold = target_cell(sample)[0]
        for (cell, text), (query, keys) in zip(cells, rows, strict=True):
            assert query == images[cell]
            assert (keys != [query]) == (cell == gold), (sample.instruction, text)
            if cell == gold:
                named += 1
                assert all(k < images[0] for k in keys)  # the instruction's tokens
                word = vlm.tokenizer.decode(ids[b, keys].tolist()).strip()
                assert word.lower() == text.lower()
    assert named >= len(samples) // 2  # a link's cell may hold a second word, then it is left


def test_the_match_term_trains_the_last_layer_head_and_falls(tmp_path: Path) -> None:
    """The match term alone (no pointing, look or copy) reports both attentions, lowers its
    loss on the same screens, and adds no tensor to the checkpoint."""
    from tests.train.conftest import tensor_names

    from pixelpilot.train.pointing import train_pointing_sft

    model, config, _, _, _ = _setup(tmp_path)
    result = train_pointing_sft(config, sigma=20.0, thought=False, weight=0.0, match_weight=1.0)
    steps = [r for r in result.history if "match_loss" in r]
    assert len(steps) == 30
    assert all(0 < r["match_attention"] < 1 and 0 < r["match_self"] < 1 for r in steps)
    first = sum(r["match_loss"] for r in steps[:5]) / 5
    last = sum(r["match_loss"] for r in steps[-5:]) / 5
    assert last < first - 0.3, (first, last)
    assert tensor_names(result.checkpoint) == tensor_names(model)


def test_word_classes_ignore_case_and_the_punctuation_around_a_word() -> None:
    from pixelpilot.train.reading import BUCKETS, word_class

    assert word_class("Velit,") == word_class("velit") == word_class("VELIT.")
    assert word_class("velit") != word_class("vitae")
    assert word_class("...") is None and word_class("") is None
    assert 0 <= word_class("ONE") < BUCKETS


def test_the_reading_warm_up_trains_the_tower_and_projector_only(tmp_path: Path) -> None:
    """A few warm-up steps on real synthetic screens: the tower and the projector change, the
    decoder does not, the checkpoint has the same tensors and loads; the figures are logged."""
    import json

    from safetensors.torch import load_file

    from pixelpilot.train.reading import read_warmup
    from pixelpilot.vlm import load

    model, config, _, _, _ = _setup(tmp_path, 8)
    summary = read_warmup(str(model), config.data, str(tmp_path / "read"), steps=6,
                          batch_size=4, progress=False)  # fmt: skip
    assert summary["screens"] == 8 and summary["steps"] == 6
    assert 0 <= summary["read_accuracy"] <= 1
    rows = [json.loads(line) for line in (tmp_path / "read" / "metrics.jsonl").open()]
    assert [r["step"] for r in rows] == list(range(1, 7)) and all(r["texts"] > 0 for r in rows)
    before = load_file(str(Path(model) / "model.safetensors"))
    after = load_file(str(Path(summary["checkpoint"]) / "model.safetensors"))
    assert before.keys() == after.keys()
    changed = {k for k in before if not (before[k] == after[k]).all()}
    assert changed and all(("vision" in k or "mm_projector" in k) for k in changed)
    assert any("vision" in k for k in changed) and any("mm_projector" in k for k in changed)
    from pixelpilot.agent.sample import _load_rgb
    from pixelpilot.vlm import Conversation, SamplingParams

    shot = _load_rgb(str(next((Path(config.data)).rglob("step-0000.png"))))
    answer = load(summary["checkpoint"]).generate(
        [Conversation.user("Click the button.", [shot])], SamplingParams(max_new_tokens=4)
    )  # a checkpoint like any other: it loads and answers
    assert len(answer) == 1 and answer[0].token_ids


def test_a_low_rank_warm_up_head_is_a_plain_head_of_that_rank(tmp_path: Path) -> None:
    """``rank`` (round 48): the head file holds a BUCKETS x hidden weight of that rank and a
    bias, the word term reads it as any head, and the code is the same for a seed; a rank
    below 1 is refused before any work."""
    import torch
    from safetensors.torch import load_file

    from pixelpilot.errors import ConfigError
    from pixelpilot.train.pointing import PointingObjective
    from pixelpilot.train.reading import BUCKETS, HEAD_FILE, low_rank_head, read_warmup

    model, config, vlm, cache, samples = _setup(tmp_path, 4)
    read_warmup(str(model), config.data, str(tmp_path / "read"), steps=3, batch_size=4,
                rank=4, progress=False)  # fmt: skip
    head = load_file(str(tmp_path / "read" / HEAD_FILE))
    hidden = vlm.model.config.text_config.hidden_size
    assert head["weight"].shape == (BUCKETS, hidden) and head["bias"].shape == (BUCKETS,)
    assert int(torch.linalg.matrix_rank(head["weight"])) == 4
    objective = PointingObjective(vlm, config, cache, 20.0, False, 0.0, word_weight=1.0,
                                  word_head=str(tmp_path / "read" / HEAD_FILE))  # fmt: skip
    objective.sample_losses(samples)
    word, figures = objective.keepers[0].loss(objective._seen["input_ids"], samples)
    assert torch.isfinite(word) and figures["word_texts"] > 0
    a, b = low_rank_head(hidden, 4, seed=1), low_rank_head(hidden, 4, seed=1)
    assert torch.equal(a.code, b.code) and not torch.equal(a.code, low_rank_head(hidden, 4).code)
    with pytest.raises(ConfigError, match="head rank must be 1 or more, not 0"):
        read_warmup(str(model), config.data, str(tmp_path / "o"), steps=2, rank=0)
    assert not (tmp_path / "o").exists()


def test_the_reading_warm_up_refuses_an_empty_schedule(tmp_path: Path) -> None:
    from pixelpilot.errors import ConfigError
    from pixelpilot.train.reading import read_warmup

    for steps, batch in ((0, 8), (5, 0)):
        with pytest.raises(ConfigError, match="needs steps >= 1 and batch_size >= 1"):
            read_warmup(str(tmp_path), str(tmp_path), str(tmp_path / "o"), steps=steps,
                        batch_size=batch)  # fmt: skip
    assert not (tmp_path / "o").exists()


def test_the_word_term_keeps_the_warm_up_head_frozen_and_trains_the_vision_side(
    tmp_path: Path,
) -> None:
    """The warm-up writes its head beside its checkpoint; SFT with the word term (alone: no
    pointing, look or copy) reads it, reports the head's accuracy on every step, lowers its
    loss, leaves the head file as it was and adds no tensor to the checkpoint; the term's
    gradient reaches the tower and the projector and no decoder weight."""
    from dataclasses import replace

    from safetensors.torch import load_file
    from tests.train.conftest import tensor_names

    from pixelpilot.train.pointing import PointingObjective, train_pointing_sft
    from pixelpilot.train.reading import BUCKETS, HEAD_FILE, read_warmup

    model, config, _, _, _ = _setup(tmp_path)
    summary = read_warmup(str(model), config.data, str(tmp_path / "read"), steps=4,
                          batch_size=4, progress=False)  # fmt: skip
    head = tmp_path / "read" / HEAD_FILE
    written = load_file(str(head))
    assert written["weight"].shape[0] == written["bias"].shape[0] == BUCKETS
    config = replace(config, model=summary["checkpoint"])
    result = train_pointing_sft(config, sigma=20.0, thought=False, weight=0.0, word_weight=1.0,
                                word_head=str(head))  # fmt: skip
    steps = [r for r in result.history if "word_loss" in r]
    assert len(steps) == 30 and all(0 <= r["word_accuracy"] <= 1 for r in steps)
    first = sum(r["word_loss"] for r in steps[:5]) / 5
    last = sum(r["word_loss"] for r in steps[-5:]) / 5
    assert last < first - 0.5, (first, last)
    after = load_file(str(head))
    assert all((after[k] == written[k]).all() for k in written)
    assert tensor_names(result.checkpoint) == tensor_names(model)
    _, _, vlm, cache, samples = _setup(tmp_path / "again", 4)  # the term's gradient alone
    objective = PointingObjective(vlm, config, cache, 20.0, False, 0.0, word_weight=1.0,
                                  word_head=str(head))  # fmt: skip
    objective.sample_losses(samples)
    word, figures = objective.keepers[0].loss(objective._seen["input_ids"], samples)
    expected = sum(len(label_cells(s.meta["labels"], s.screen)[0]) for s in samples)
    assert figures["word_texts"] == expected > 0
    vlm.model.zero_grad()
    word.backward()
    grads = {n: p.grad for n, p in vlm.model.named_parameters() if p.grad is not None}
    assert any("vision" in n and g.abs().sum() > 0 for n, g in grads.items())
    assert any("mm_projector" in n and g.abs().sum() > 0 for n, g in grads.items())
    assert all(g.abs().sum() == 0 for n, g in grads.items() if "language_model" in n)


def test_the_word_term_needs_the_warm_up_head(tmp_path: Path) -> None:
    from pixelpilot.errors import ConfigError
    from pixelpilot.train.pointing import PointingObjective

    _, config, vlm, cache, _ = _setup(tmp_path, 1)
    with pytest.raises(ConfigError, match="no word head at .*delete it to run the warm-up"):
        PointingObjective(vlm, config, cache, 20.0, False, 0.0, word_weight=1.0,
                          word_head=str(tmp_path / "read" / "word-head.safetensors"))  # fmt: skip
    with pytest.raises(ConfigError, match="needs the reading warm-up's word_head"):
        PointingObjective(vlm, config, cache, 20.0, False, 0.0, word_weight=1.0)


def test_the_reading_warm_up_needs_words_on_its_screens(tmp_path: Path) -> None:
    """Screens that record no words, or only words without a letter or digit, give a
    one-line error before any training."""
    from pixelpilot.errors import ConfigError
    from pixelpilot.train.reading import read_warmup
    from pixelpilot.train.synthetic import write_synthetic
    from pixelpilot.vlm.tiny import build_tiny

    model = build_tiny(arch="kimi_k25", size="xs")
    for name, change, message in (
        ("none", lambda row: row.pop("labels"), "found no screen with labels"),
        ("marks", lambda row: row.update(labels=[["--", *box] for _, *box in row["labels"]]),
         "found no word to name"),
    ):  # fmt: skip
        data = write_synthetic(tmp_path / name, 2, seed=0, kinds=("dialog",))
        for path in Path(data).rglob("*.jsonl"):
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            for row in rows:
                if "labels" in row:
                    change(row)
            path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        with pytest.raises(ConfigError, match=message):
            read_warmup(str(model), str(data), str(tmp_path / name / "out"), steps=2)
        assert not (tmp_path / name / "out").exists()


def test_named_classes_are_the_words_a_task_quotes_or_writes_in_capitals() -> None:
    """Per task: the quoted strings' words and the words in capitals; not the instruction's
    other words, and not another task's words."""
    from types import SimpleNamespace as S

    from pixelpilot.train.reading import named_classes, word_class

    samples = [S(task="a", instruction='Click on the "Okay" button.'),
               S(task="a", instruction='Click on the "no" button.'),
               S(task="b", instruction="Click button ONE."),
               S(task="c", instruction='Click on the link "lacus,".'),
               S(task="d", instruction="Click the button.")]  # fmt: skip
    asked = named_classes(samples)
    assert asked == {"a": {word_class("okay"), word_class("no")}, "b": {word_class("one")},
                     "c": {word_class("lacus")}}  # fmt: skip


def test_a_named_warm_up_reads_the_named_words_only_and_its_head_lists_them(
    tmp_path: Path,
) -> None:
    """With ``named`` the warm-up's examples are the cells whose word its screen's task names
    (fewer than all labelled cells), the head file lists those classes, and the word term
    then asks only for them."""
    from safetensors.torch import load_file

    from pixelpilot.train.pointing import PointingObjective
    from pixelpilot.train.reading import HEAD_FILE, named_classes, read_warmup, word_class

    model, config, _, _, samples = _setup(tmp_path, 8)
    asked = named_classes(samples)
    named = {k for s in samples for _, t in label_cells(s.meta["labels"], s.screen)[0]
             if (k := word_class(t)) is not None and k in asked[s.task]}  # fmt: skip
    every = {word_class(t) for s in samples for _, t in label_cells(s.meta["labels"], s.screen)[0]}
    assert named and named < every
    summary = read_warmup(str(model), config.data, str(tmp_path / "read"), steps=2,
                          batch_size=4, named=True, progress=False)  # fmt: skip
    head = load_file(str(tmp_path / "read" / HEAD_FILE))
    assert set(head["classes"].tolist()) == named and summary["classes"] == len(named)
    _, _, vlm, cache, samples = _setup(tmp_path / "again", 8)
    objective = PointingObjective(vlm, config, cache, 20.0, False, 0.0, word_weight=1.0,
                                  word_head=str(tmp_path / "read" / HEAD_FILE))  # fmt: skip
    objective.sample_losses(samples[:4])
    _, figures = objective.keepers[0].loss(objective._seen["input_ids"], samples[:4])
    expected = sum(word_class(t) in named for s in samples[:4]
                   for _, t in label_cells(s.meta["labels"], s.screen)[0])  # fmt: skip
    every_cell = sum(len(label_cells(s.meta["labels"], s.screen)[0]) for s in samples[:4])
    assert figures["word_texts"] == expected and 0 < expected < every_cell


def test_length_classes_are_a_words_length_and_its_capital() -> None:
    from pixelpilot.train.reading import LONGEST, length_class, text_class, word_class

    assert length_class("Velit,") == 5 * 2 + 1 and length_class("velit") == 10
    assert length_class("(ab)") == 4 and length_class("ONE") == 7
    assert length_class("x" * 40) == LONGEST * 2  # long words share the longest class
    assert length_class("...") is None and length_class("") is None
    assert text_class("Velit", "length") == 11 and text_class("Velit") == word_class("velit")


def test_width_classes_are_how_wide_the_page_draws_a_text() -> None:
    """Widths of click-link words as Chromium drew them here (their recorded boxes), in
    3-pixel bins; the trailing punctuation is drawn, so it counts; wide texts share the
    widest class."""
    from pixelpilot.train.reading import WIDEST, WIDTH_BIN, text_class, width_class

    for word, drawn in (("sem", 21), ("bibendum", 50), ("Adipiscing", 51), ("netus.", 31)):
        assert abs(width_class(word) * WIDTH_BIN - drawn) < 2 * WIDTH_BIN, word
    assert width_class("sem") < width_class("bibendum")
    assert width_class("netus.") > width_class("netus")
    assert width_class("x" * 80) == WIDEST and width_class("...") is None
    assert text_class("sem", "width") == width_class("sem")


def test_the_quoted_length_term_reads_the_quoted_word_on_the_text_side(tmp_path: Path) -> None:
    """``text_length_weight``: on every sample whose instruction quotes a word (``Click button
    NEXT.`` does not), the row is the word's last token (before the screenshot) and the class
    its length (or width) class; its gradient reaches the decoder and not the vision side; a
    few steps lower it."""
    import torch

    from pixelpilot.train.pointing import PointingObjective, train_pointing_sft
    from pixelpilot.train.reading import length_class, width_class

    model, config, vlm, cache, samples = _setup(tmp_path, 6)
    for kind, of in (("length", length_class), ("width", width_class)):
        objective = PointingObjective(vlm, config, cache, 20.0, False, 0.0,
                                      text_length_weight=1.0, text_length_kind=kind)  # fmt: skip
        objective.sample_losses(samples)
        ids = objective._seen["input_ids"]
        rows = objective.lengths.rows(ids, samples)
        quoting = [b for b, s in enumerate(samples) if '"' in s.instruction]
        assert [b for b, _, _ in rows] == quoting and 0 < len(quoting) < len(samples)
        for b, position, k in rows:
            quoted = samples[b].instruction.split('"')[1]
            assert k == of(quoted)
            before = vlm.tokenizer.decode(ids[b, : position + 1].tolist())
            assert before.endswith(quoted) and ids[b, position + 1 :].eq(
                objective.image_token).any()  # fmt: skip
    vlm.model.zero_grad()
    term, figures = objective.lengths.loss(ids, samples)
    assert figures["text_length_words"] == len(quoting) and term.item() > 0
    term.backward()
    tower = [p.grad for n, p in vlm.model.named_parameters() if "vision_tower" in n]
    assert all(g is None or not g.any() for g in tower)
    assert vlm.model.get_input_embeddings().weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert objective.lengths.loss(ids, samples) == (None, {})  # one batch, one loss
    result = train_pointing_sft(config, sigma=20.0, thought=False, weight=0.0,
                                text_length_weight=1.0)  # fmt: skip
    steps = [r["text_length_loss"] for r in result.history if "text_length_loss" in r]
    assert len(steps) == 30 and sum(steps[-5:]) < sum(steps[:5]) - 1.0, steps


def test_the_quoted_term_through_a_word_head_scores_with_that_heads_weights(
    tmp_path: Path,
) -> None:
    """``QuotedLength(..., head=FILE)``: the logits are the head's own (its weight and bias at
    the recorded hidden states), the classes the head's kind (a word head's hashed words, not
    the ``kind`` passed), and the head does not train."""
    import torch
    from safetensors.torch import save_file

    from pixelpilot.train.pointing import PointingObjective
    from pixelpilot.train.reading import BUCKETS, word_class

    model, config, vlm, cache, samples = _setup(tmp_path, 6)
    hidden = vlm.model.config.text_config.hidden_size
    weight, bias = torch.randn(BUCKETS, hidden), torch.randn(BUCKETS)
    head = tmp_path / "head.safetensors"
    save_file({"weight": weight, "bias": bias}, str(head), metadata={"classes": "word"})
    objective = PointingObjective(vlm, config, cache, 20.0, False, 0.0, text_length_weight=1.0,
                                  text_length_kind="length",
                                  text_length_head=str(head))  # fmt: skip
    assert objective.lengths.kind == "word"
    objective.sample_losses(samples)
    ids = objective._seen["input_ids"]
    rows = objective.lengths.rows(ids, samples)
    assert rows and all(k == word_class(samples[b].instruction.split('"')[1]) for b, _, k in rows)
    captured = {}
    layers = vlm.model.model.language_model.layers
    hook = layers[-1].register_forward_pre_hook(
        lambda m, a, k: captured.update(h=(a[0] if a else k["hidden_states"]).detach()),
        with_kwargs=True,
    )
    objective.sample_losses(samples)
    hook.remove()
    term, figures = objective.lengths.loss(ids, samples)
    states = torch.stack([captured["h"][b, p] for b, p, _ in rows]).float()
    logits = states @ weight.T + bias
    target = torch.tensor([k for _, _, k in rows])
    expected = torch.nn.functional.cross_entropy(logits, target)
    assert torch.allclose(term, expected, rtol=1e-4, atol=1e-4), (term, expected)
    assert figures["text_length_words"] == len(rows)
    assert not objective.lengths.map.requires_grad and not objective.lengths.bias.requires_grad


def test_a_length_warm_up_names_its_classes_and_the_word_term_asks_for_them(
    tmp_path: Path,
) -> None:
    """A warm-up with ``classes="length"`` says so in its head's metadata; the word term then
    scores each labelled cell against its text's length class: with a head that always answers
    one class, its accuracy is exactly the share of texts of that length (and the same head
    read as a word head scores the word classes instead). Unknown kinds are refused."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from pixelpilot.errors import ConfigError
    from pixelpilot.train.pointing import PointingObjective
    from pixelpilot.train.reading import BUCKETS, HEAD_FILE, length_class, read_warmup, word_class

    model, config, _, _, samples = _setup(tmp_path, 8)
    summary = read_warmup(str(model), config.data, str(tmp_path / "read"), steps=2,
                          batch_size=4, classes="length", progress=False)  # fmt: skip
    assert summary["class_kind"] == "length"
    with safe_open(str(tmp_path / "read" / HEAD_FILE), "pt") as f:
        assert f.metadata() == {"classes": "length"}
    texts = [t for s in samples[:4] for _, t in label_cells(s.meta["labels"], s.screen)[0]]
    wanted = length_class(texts[0])
    hidden = torch.zeros(BUCKETS, 128)  # the xs decoder's width
    bias = torch.zeros(BUCKETS)
    bias[wanted] = 50.0  # every cell answers the first text's length class
    _, _, vlm, cache, _ = _setup(tmp_path / "again", 1)
    for kind, of in (("length", length_class), ("word", word_class)):
        head = tmp_path / f"{kind}.safetensors"
        save_file({"weight": hidden, "bias": bias}, str(head), metadata={"classes": kind})
        objective = PointingObjective(vlm, config, cache, 20.0, False, 0.0, word_weight=1.0,
                                      word_head=str(head))  # fmt: skip
        objective.sample_losses(samples[:4])
        _, figures = objective.keepers[0].loss(objective._seen["input_ids"], samples[:4])
        share = sum(of(t) == wanted for t in texts) / len(texts)
        assert figures["word_texts"] == len(texts)
        assert figures["word_accuracy"] == pytest.approx(share)
        assert (share > 0) == (kind == "length")
    odd = tmp_path / "odd.safetensors"
    save_file({"weight": hidden, "bias": bias}, str(odd), metadata={"classes": "colour"})
    with pytest.raises(ConfigError, match="names unknown classes 'colour'"):
        PointingObjective(vlm, config, cache, 20.0, False, 0.0, word_weight=1.0,
                          word_head=str(odd))  # fmt: skip
    with pytest.raises(ConfigError, match="classes are one of word, length, width, not 'colour'"):
        read_warmup(str(model), config.data, str(tmp_path / "r2"), steps=1, classes="colour")
    with pytest.raises(ConfigError, match="a named warm-up reads words"):
        read_warmup(str(model), config.data, str(tmp_path / "r3"), steps=1, named=True,
                    classes="length")  # fmt: skip


def test_a_length_head_beside_the_word_head_reads_its_tasks_screens_only(tmp_path: Path) -> None:
    """``length_tasks`` trains a second head at the same steps, on those tasks' screens only:
    its file names its classes and tasks, every step logs both heads' figures, and the word
    term keeps both heads, the second asking for the length classes of its tasks' texts only.
    A task with no labelled screen is refused before anything trains."""
    import json

    from safetensors import safe_open

    from pixelpilot.errors import ConfigError
    from pixelpilot.train.pointing import PointingObjective
    from pixelpilot.train.reading import HEAD_FILE, LENGTH_HEAD_FILE, read_warmup

    model, config, _, _, samples = _setup(tmp_path, 8)
    tasks = sorted({s.task for s in samples})
    assert tasks == ["synthetic/button", "synthetic/link"]
    links = [s for s in samples if s.task == "synthetic/link"]
    summary = read_warmup(str(model), config.data, str(tmp_path / "read"), steps=3,
                          batch_size=4, length_tasks=["synthetic/link"],
                          progress=False)  # fmt: skip
    assert summary["screens"] == 8 and summary["length_screens"] == len(links) > 0
    assert 0 <= summary["length_accuracy"] <= 1 and summary["length_tasks"] == ["synthetic/link"]
    with safe_open(str(tmp_path / "read" / LENGTH_HEAD_FILE), "pt") as f:
        assert f.metadata() == {"classes": "length", "tasks": "synthetic/link"}
        # the classes its screens showed, for the read guide (round 52): its tasks' words'
        taught = set(f.get_tensor("taught").tolist())
        shown = {length_class(t) for s in links for t, _ in s.meta["labels"]}
        assert taught and taught <= shown
    with safe_open(str(tmp_path / "read" / HEAD_FILE), "pt") as f:
        assert f.metadata() == {"classes": "word"}
    rows = [json.loads(line) for line in (tmp_path / "read" / "metrics.jsonl").open()]
    assert len(rows) == 3 and all(r["texts"] > 0 and r["length_texts"] > 0 for r in rows)
    _, _, vlm, cache, _ = _setup(tmp_path / "again", 1)
    heads = [str(tmp_path / "read" / name) for name in (HEAD_FILE, LENGTH_HEAD_FILE)]
    objective = PointingObjective(vlm, config, cache, 20.0, False, 0.0, word_weight=1.0,
                                  word_head=heads)  # fmt: skip
    assert [k.name for k in objective.keepers] == ["word", "length"]
    objective.sample_losses(samples)  # one forward pass: each head records its embeddings
    ids = objective._seen["input_ids"]
    _, words = objective.keepers[0].loss(ids, samples)
    _, lengths = objective.keepers[1].loss(ids, samples)
    assert words["word_texts"] == sum(len(label_cells(s.meta["labels"], s.screen)[0])
                                      for s in samples)  # fmt: skip
    assert lengths["length_texts"] == sum(len(label_cells(s.meta["labels"], s.screen)[0])
                                          for s in links) < words["word_texts"]  # fmt: skip
    with pytest.raises(ConfigError, match="no labelled screen of miniwob/click-link"):
        read_warmup(str(model), config.data, str(tmp_path / "r2"), steps=1,
                    length_tasks=["miniwob/click-link"], progress=False)  # fmt: skip
    assert not (tmp_path / "r2").exists()


def test_a_length_head_on_its_own_screens(tmp_path: Path) -> None:
    """``length_data`` gives the second head every labelled screen of another folder (drawn
    link screens, round 45), whatever their task, while the file still names ``length_tasks``
    for the word term; without ``length_tasks``, or with a folder holding no labelled
    screen, it is refused before anything is written."""
    import json

    from safetensors import safe_open

    from pixelpilot.errors import ConfigError
    from pixelpilot.train.reading import LENGTH_HEAD_FILE, read_warmup
    from pixelpilot.train.synthetic import write_synthetic

    model, config, _, _, samples = _setup(tmp_path, 8)
    links = write_synthetic(tmp_path / "links", 5, seed=3, kinds=("link",))
    own = read_warmup(str(model), config.data, str(tmp_path / "read"), steps=2, batch_size=4,
                      length_tasks=["miniwob/click-link"], length_data=str(links),
                      progress=False)  # fmt: skip
    in_data = sum(1 for s in samples if s.task == "synthetic/link")
    assert own["length_screens"] == 5 != in_data and own["screens"] == 8
    with safe_open(str(tmp_path / "read" / LENGTH_HEAD_FILE), "pt") as f:
        assert f.metadata() == {"classes": "length", "tasks": "miniwob/click-link"}
    with pytest.raises(ConfigError, match="length_data needs length_tasks"):
        read_warmup(str(model), config.data, str(tmp_path / "r2"), steps=1,
                    length_data=str(links), progress=False)  # fmt: skip
    empty = tmp_path / "empty"  # screens whose steps record no labels
    for path in write_synthetic(empty, 2, seed=0, kinds=("button",)).rglob("trajectory.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "labels"}) + "\n"
                                for r in rows))  # fmt: skip
    with pytest.raises(ConfigError, match="no labelled screen under .*empty"):
        read_warmup(str(model), config.data, str(tmp_path / "r3"), steps=1,
                    length_tasks=["miniwob/click-link"], length_data=str(empty),
                    progress=False)  # fmt: skip
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()
