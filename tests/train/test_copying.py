"""The copy objective: which attention it asks for, and that it reads the real heads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pixelpilot.train.copying import CopyAttention, quoted

TEXT = ('Enter the username "nieves" and the password "8ai" into the fields. '
        "Action: type(content='nieves') Action: type(content='8ai') "
        "Action: type(content='zz')")  # fmt: skip


@pytest.fixture(scope="module")
def kimi(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from pixelpilot.vlm import load
    from pixelpilot.vlm.tiny import build_tiny

    return load(str(build_tiny(tmp_path_factory.mktemp("k") / "k", "kimi_k25", "xs", 0)))


def test_quoted_finds_the_string_between_quotes() -> None:
    q = 9
    assert quoted([1, q, 5, 6, q, 2, q, 5, q], [5, 6], q) == 2
    assert quoted([1, q, 5, 6, q, 2, q, 5, q], [5], q) == 7  # not the 5 followed by a 6
    assert quoted([1, q, 5, 6, q], [6], q) is None and quoted([q, q], [], q) is None


def test_pairs_point_typed_tokens_at_the_quoted_ones(kimi) -> None:  # noqa: ANN001
    copier = CopyAttention(kimi)
    ids = kimi.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    copy, previous = copier.pairs(ids)
    tokens = kimi.tokenizer.convert_ids_to_tokens(ids)
    start = tokens.index('"') + 1  # the first token of "nieves"
    n = tokens.index('"', start) - start  # its tokens
    assert n >= 3 and "".join(tokens[start : start + n]) == "nieves"
    typed = [q for q, _ in copy[: n + 1]]
    assert [k for _, k in copy[: n + 1]] == list(range(start, start + n + 1))  # and the quote
    assert tokens[typed[0]] == "='"  # the query is the position that predicts the token
    assert tokens[copy[n][1]] == '"'  # the last typed token attends to the closing quote
    assert [ids[q + 1] for q in typed[:n]] == ids[start : start + n]  # the same tokens
    assert len(copy) == n + 1 + 4  # then "8ai" (3 tokens and the quote); 'zz' is not quoted
    assert previous[:2] == [(start, start - 1), (start + 1, start)]


def test_recomputed_attention_is_the_heads_own(kimi) -> None:  # noqa: ANN001
    """The objective's attention equals the eager attention weights of the model."""
    copier = CopyAttention(kimi)
    ids = torch.tensor([kimi.tokenizer(TEXT, add_special_tokens=False)["input_ids"]])
    copy, previous = copier.pairs(ids[0].tolist())
    model = kimi.model
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            attentions = model(input_ids=ids, output_attentions=True).attentions
            for index, layer, pairs in ((1, -1, copy), (0, 0, previous)):
                hidden, rope = copier._seen[index]
                batch = [(0, q, k) for q, k in pairs]
                mine = copier._log_attention(index, hidden, rope, ids, batch).exp()
                theirs = torch.stack([attentions[layer][0, 0, q, k] for q, k in pairs])
                assert torch.allclose(mine, theirs, atol=1e-6)
            loss, figures = copier.loss(ids)
    finally:
        model.set_attn_implementation("sdpa")
    assert loss is not None and 0 < figures["copy_attention"] < 1
    assert not copier._seen  # cleared for the next batch


def test_choices_name_the_quoted_string_each_typed_answer_starts(kimi) -> None:  # noqa: ANN001
    """The choice term's (query, right key, candidates): one per typed answer whose string the
    prompt quotes, the candidates every token after a quote mark; one quoted string alone
    leaves nothing to choose."""
    copier = CopyAttention(kimi)
    ids = kimi.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    tokens = kimi.tokenizer.convert_ids_to_tokens(ids)
    marks = [i for i, t in enumerate(tokens) if t == '"']
    assert len(marks) == 4
    found = copier.choices(ids)
    assert [(tokens[q], k) for q, k, _ in found] == [("='", marks[0] + 1), ("='", marks[2] + 1)]
    assert all(keys == [m + 1 for m in marks] for _, _, keys in found)  # 'zz' is not quoted
    one = kimi.tokenizer('Enter "nieves" here. Action: type(content=\'nieves\')',
                         add_special_tokens=False)["input_ids"]  # fmt: skip
    assert copier.pairs(one)[0] and copier.choices(one) == []


def test_the_choice_term_is_the_copy_heads_attention_over_the_candidates(kimi) -> None:  # noqa: ANN001
    """``choice_loss`` is -log of the copy head's eager attention on the right string's first
    token, renormalised over the candidates, averaged over the typed answers."""
    copier = CopyAttention(kimi)
    ids = torch.tensor([kimi.tokenizer(TEXT, add_special_tokens=False)["input_ids"]])
    found = copier.choices(ids[0].tolist())
    model = kimi.model
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            weights = model(input_ids=ids, output_attentions=True).attentions[-1][0, 0]
            loss, figures = copier.choice_loss(ids)
    finally:
        model.set_attn_implementation("sdpa")
    want, hits = [], 0
    for q, right, keys in found:
        share = weights[q, keys] / weights[q, keys].sum()
        want.append(-torch.log(share[keys.index(right)]))
        hits += keys[int(share.argmax())] == right
    assert float(loss) == pytest.approx(float(torch.stack(want).mean()), rel=1e-4)
    assert figures["choice_accuracy"] == hits / len(found)
    assert copier._seen  # kept: the copy term reads the same forward pass after it


def test_a_few_steps_raise_the_copy_heads_attention(tmp_path: Path) -> None:
    """SFT with the copy term on typing episodes logs it and moves the copy head toward the
    quoted tokens; the checkpoint gains no tensor."""
    from tests.train.conftest import tensor_names

    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.pointing import train_pointing_sft
    from pixelpilot.train.synthetic import write_synthetic
    from pixelpilot.vlm.tiny import build_tiny

    model = build_tiny(tmp_path / "m", arch="kimi_k25", size="xs", seed=0)
    data = write_synthetic(tmp_path / "syn", 6, seed=0, kinds=("type",))
    config = SFTConfig(data=str(data), model=str(model), out=str(tmp_path / "run"), max_steps=12,
                       batch_size=4, lr=3e-3, prompt_kind="grounding", action_types="type",
                       history_thoughts=False, progress=False)  # fmt: skip
    result = train_pointing_sft(config, sigma=20.0, thought=False, weight=0.0, copy_weight=1.0)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert all("copy_loss" in r and r["loss"] > r["nll"] for r in steps)
    first, last = steps[0]["copy_attention"], steps[-1]["copy_attention"]
    assert last > 2 * first, (first, last)
    assert tensor_names(result.checkpoint) == tensor_names(model)


def test_the_choice_term_teaches_which_string_to_start(tmp_path: Path) -> None:
    """SFT with the choice term alone on typing episodes (a quarter of them with a username
    and a password): at first the copy head spreads over the four candidates (about log 4),
    a few steps later it picks the right string's first token."""
    import math

    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.pointing import train_pointing_sft
    from pixelpilot.train.synthetic import write_synthetic
    from pixelpilot.vlm.tiny import build_tiny

    model = build_tiny(tmp_path / "m", arch="kimi_k25", size="xs", seed=0)
    data = write_synthetic(tmp_path / "syn", 12, seed=0, kinds=("type",))
    config = SFTConfig(data=str(data), model=str(model), out=str(tmp_path / "run"), max_steps=16,
                       batch_size=4, lr=3e-3, prompt_kind="grounding", action_types="type",
                       history_thoughts=False, progress=False)  # fmt: skip
    train_pointing_sft(config, sigma=20.0, thought=False, weight=0.0, choice_weight=1.0)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    chose = [r for r in rows if "choice_loss" in r]
    assert len(chose) >= 6 and all(r["loss"] > r["nll"] for r in chose)
    assert chose[0]["choice_loss"] == pytest.approx(math.log(4), rel=0.2)
    assert chose[-1]["choice_loss"] < 0.3 * chose[0]["choice_loss"], chose
    assert chose[-1]["choice_accuracy"] == 1.0


def test_other_decoders_get_a_one_line_error(tmp_path: Path) -> None:
    from pixelpilot.errors import ConfigError
    from pixelpilot.vlm import load
    from pixelpilot.vlm.tiny import build_tiny

    qwen = load(str(build_tiny(tmp_path / "q", "qwen2_5_vl", "xs", 0)))
    with pytest.raises(ConfigError, match="multi-head latent attention"):
        CopyAttention(qwen)
