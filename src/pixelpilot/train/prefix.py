"""Shared-prefix groups: G answers of one GUI prompt from one pass over the prompt.

A GUI step's prompt is long (system prompt, history, one to five screenshots) and its answer
short (a thought and one action), and GRPO needs G answers per prompt. Both the sampler and
the scorer here run the vision encoder and the prompt once per prompt, then expand the
prompt's key/value cache to the G answers of its group:

- ``sample_groups``: one prefill of the (left-padded) prompts, the cache expanded G times,
  then seeded token-by-token decoding of all ``B * G`` answers as one batch;
- ``group_logprobs``: the per-token log-probabilities (and entropies) of given answers, with
  the answers attending to the expanded cache. With ``grad=True`` the cache keeps its autograd
  graph, so the backward pass runs through the prompt and the vision encoder once per prompt,
  with the G answers' gradients summed into it.

Both equal the straightforward per-answer computation (``HFVLM.logprobs``: the prompt and
answer as one sequence, vision encoder included, once per answer) up to float rounding; the
tests pin log-probabilities within 1e-4 and gradients within tolerance.

Positions: Qwen2-VL and Qwen2.5-VL use 3-D rotary positions (M-RoPE) in the prompt, where a
screenshot advances the position by its grid side, not by its token count. The prompt's
positions come from the model's own ``get_rope_index``; the answer's text positions continue
from the prompt's largest position plus one (what ``rope_deltas`` encodes in ``generate``).
Models with plain 1-D positions continue from the number of real prompt tokens.

The functions take the model module itself (a transformers model, or one wrapped by peft), so
the same code scores the policy, the sampling policy and a reference model (a LoRA model with
its adapter disabled).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pixelpilot.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from pixelpilot.vlm.base import Conversation

Groups = Sequence[Sequence[Sequence[int]]]  # per prompt, its answers' token ids
Processors = Callable[[Any, Any], Any]  # (answer ids [N, t], logits [N, V]) -> logits


@dataclass(frozen=True)
class Sampled:
    """One sampled answer: its token ids (up to and including the end token, if any), its
    text, the log-probability of each token under the sampling distribution, and why it
    stopped (``stop``: an end token; ``length``: ``max_new_tokens`` reached)."""

    token_ids: tuple[int, ...]
    text: str
    logprobs: tuple[float, ...]
    finish_reason: str


@dataclass(frozen=True)
class Scored:
    """Log-probabilities of ``N`` answers (all groups, in order), right-padded to the longest:
    ``logprobs`` and ``mask`` are ``[N, L]``; ``entropy`` (``[N, L]``, no gradient) when asked."""

    logprobs: torch.Tensor
    mask: torch.Tensor
    entropy: torch.Tensor | None = None

    def rows(self) -> list[torch.Tensor]:
        """One 1-D tensor per answer, without the padding (``HFVLM.logprobs``' shape)."""
        lengths = self.mask.sum(dim=1).tolist()
        return [self.logprobs[i, : int(n)] for i, n in enumerate(lengths)]


@dataclass
class _Prefix:
    cache: Any  # the expanded key/value cache, one row per answer
    mask: torch.Tensor  # [N, P] attention mask of the prompt rows
    next_position: torch.Tensor  # [N] text position of each row's first answer token
    last_logits: torch.Tensor  # [N, V] logits at the prompt's last token


def encode_prompts(vlm: Any, conversations: Sequence[Conversation]) -> Any:
    """The processor's tensors for ``conversations`` (left-padded, images included) on the
    model's device: compute them once per prompt and reuse them for sampling and scoring."""
    for conv in conversations:
        vlm._check_images(conv)
    texts = [vlm.prompt_text(c) for c in conversations]
    images = [im.convert("RGB") for c in conversations for im in c.images]
    vlm.tokenizer.padding_side = "left"
    try:
        batch = vlm.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
    except ValueError as exc:
        raise ModelError(f"the processor rejected the input: {exc}") from exc
    return batch.to(vlm.device)


def collate_prompts(encodings: Sequence[dict[str, Any]], pad_id: int, device: Any) -> dict:
    """One left-padded batch from per-prompt encodings (``HFVLM.encode_prompt``: one row each,
    no padding): token-aligned tensors are left-padded, image tensors concatenated."""
    import torch

    rows = [enc["input_ids"].shape[-1] for enc in encodings]
    length = max(rows)
    out: dict[str, Any] = {}
    for key in encodings[0]:
        values = [enc[key] for enc in encodings]
        aligned = all(v.dim() == 2 and v.shape == (1, n) for v, n in zip(values, rows, strict=True))
        if aligned:
            fill = pad_id if key == "input_ids" else 0
            padded = [
                torch.cat([v.new_full((1, length - v.shape[1]), fill), v], dim=1) for v in values
            ]
            out[key] = torch.cat(padded).to(device)
        else:
            out[key] = torch.cat(values).to(device)
    return out


def _rope_module(model: Any) -> Any:
    """The module with a multimodal ``get_rope_index`` (Qwen2-VL family), or None."""
    cached = getattr(model, "_pixelpilot_rope_module", False)
    if cached is not False:
        return cached
    found = next((m for m in model.modules() if hasattr(m, "get_rope_index")), None)
    try:
        object.__setattr__(model, "_pixelpilot_rope_module", found)
    except AttributeError:  # pragma: no cover - a module that refuses attributes
        pass
    return found


def _prompt_positions(model: Any, inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Position ids of the prompt tokens and the next text position of each row."""
    mask = inputs["attention_mask"]
    rope = _rope_module(model)
    if rope is not None and "mm_token_type_ids" in inputs:
        positions, _ = rope.get_rope_index(
            inputs["input_ids"],
            mm_token_type_ids=inputs["mm_token_type_ids"],
            image_grid_thw=inputs.get("image_grid_thw"),
            video_grid_thw=inputs.get("video_grid_thw"),
            attention_mask=mask,
        )
        nxt = positions.masked_fill(mask[None] == 0, -1).amax(dim=(0, 2)) + 1
        return positions, nxt
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    return positions, mask.long().sum(-1)


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def _prefill(model: Any, inputs: Any, index: torch.Tensor) -> _Prefix:
    """Run the prompts once and expand their cache to the rows ``index`` (prompt of each)."""
    positions, nxt = _prompt_positions(model, inputs)
    out = model(**inputs, position_ids=positions, use_cache=True, logits_to_keep=1)
    cache = _cache_of(out)
    if cache is None:
        raise ModelError(f"{type(model).__name__} returned no key/value cache")
    if len(index) != inputs["input_ids"].shape[0] or bool((index != _arange(index)).any()):
        cache.reorder_cache(index)
    mask = inputs["attention_mask"].index_select(0, index)
    last = out.logits[:, -1].index_select(0, index)
    return _Prefix(cache, mask, nxt.index_select(0, index), last)


def _arange(index: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.arange(len(index), device=index.device)


def _extend(model: Any, prefix: _Prefix, tokens: torch.Tensor, offset: int) -> Any:
    """Feed ``tokens`` ``[N, n]`` after the prompt (and ``offset`` earlier answer tokens)."""
    import torch

    n = tokens.shape[1]
    ones = prefix.mask.new_ones(tokens.shape[0], offset + n)
    mask = torch.cat([prefix.mask, ones], dim=1)
    steps = torch.arange(offset, offset + n, device=tokens.device)
    positions = prefix.next_position[:, None] + steps[None, :]
    return model(
        input_ids=tokens,
        attention_mask=mask,
        position_ids=positions,
        cache=prefix.cache,
        use_cache=True,
    )


def _group_index(sizes: Sequence[int], device: Any) -> torch.Tensor:
    import torch

    rows = [b for b, g in enumerate(sizes) for _ in range(g)]
    return torch.tensor(rows, dtype=torch.long, device=device)


def group_logprobs(
    model: Any,
    inputs: Any,
    completions: Groups,
    *,
    grad: bool = False,
    temperature: float = 1.0,
    entropy: bool = False,
    pad_id: int = 0,
    processors: Processors | None = None,
) -> Scored:
    """Per-token log-probabilities of each prompt's answers (``completions[b]`` for prompt
    ``b`` of ``inputs``), the prompt computed once per prompt. Logits are divided by
    ``temperature`` first (the distribution the answers were sampled from); with
    ``processors`` (``sample_groups``' decoding aids) the answers are scored under the
    distribution those drew them from (``aided_shift``)."""
    import torch

    if len(completions) != inputs["input_ids"].shape[0]:
        raise ModelError("group_logprobs needs one group of answers per prompt")
    device = inputs["input_ids"].device
    flat = [list(c) for group in completions for c in group]
    if not flat:
        raise ModelError("group_logprobs needs at least one answer")
    length = max(1, max(len(c) for c in flat))
    tokens = torch.full((len(flat), length), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(flat), length), dtype=torch.float32, device=device)
    for i, c in enumerate(flat):
        if c:
            tokens[i, : len(c)] = torch.tensor(c, dtype=torch.long, device=device)
            mask[i, : len(c)] = 1.0
    ctx = torch.enable_grad() if grad else torch.inference_mode()
    with ctx:
        prefix = _prefill(model, inputs, _group_index([len(g) for g in completions], device))
        logits = prefix.last_logits[:, None, :]
        if length > 1:
            rest = _extend(model, prefix, tokens[:, :-1], 0).logits
            logits = torch.cat([logits, rest], dim=1)
        logits = logits.float()
        if processors is not None:
            logits = logits + aided_shift(processors, tokens, mask, logits.shape[-1])
        logp = torch.log_softmax(logits / temperature, dim=-1)
        chosen = logp.gather(2, tokens[:, :, None]).squeeze(2) * mask
        ent = None
        if entropy:
            with torch.no_grad():  # a masked token (log-probability -inf) adds nothing
                ent = -(logp.exp() * logp.clamp_min(torch.finfo(logp.dtype).min)).sum(-1) * mask
    return Scored(chosen, mask, ent)


def aided_shift(
    processors: Processors, tokens: torch.Tensor, mask: torch.Tensor, vocab: int
) -> torch.Tensor:
    """What the decoding aids add to the logits at each answer position (``[N, L, V]``, no
    gradient: 0, a bias, or ``-inf`` for a token they forbid), from the answers' own earlier
    tokens, as ``sample_groups`` applied them while drawing. A position whose token they
    forbid (a replayed recorded answer the aids would not have written) and the padding
    past an answer are scored without them."""
    import torch

    n, length = tokens.shape
    with torch.no_grad():
        shift = torch.stack(
            [processors(tokens[:, :t], tokens.new_zeros((n, vocab), dtype=torch.float32))
             for t in range(length)], dim=1,
        )  # fmt: skip
        allowed = shift.gather(2, tokens[:, :, None]).squeeze(2) > float("-inf")
        keep = allowed & (mask > 0)
        return torch.where(keep[:, :, None], shift, torch.zeros_like(shift))


class RowGroups:
    """One ``Processors`` call over consecutive groups of rows, each group with its own
    processors (built for that group's conversation and its ``n`` answers): how a batch of
    GRPO groups applies each prompt's decoding aids."""

    def __init__(self, parts: Sequence[Sequence[Processors]], sizes: Sequence[int]) -> None:
        if len(parts) != len(sizes):
            raise ModelError("RowGroups needs one list of processors per group of rows")
        self.parts, self.sizes = [list(p) for p in parts], list(sizes)

    def __call__(self, ids: Any, scores: Any) -> Any:
        start = 0
        for processors, n in zip(self.parts, self.sizes, strict=True):
            rows = slice(start, start + n)
            for processor in processors:
                scores[rows] = processor(ids[rows], scores[rows])
            start += n
        if start != scores.shape[0]:
            raise ModelError(f"RowGroups covers {start} rows of {scores.shape[0]}")
        return scores


def _pick(
    logits: torch.Tensor, temperature: float, top_p: float, generator: Any, banned: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next tokens ``[N]`` and their log-probabilities under the model's temperature-scaled
    distribution (before the banned tokens and ``top_p`` narrow what is drawn)."""
    import torch

    if temperature <= 0:
        logp = torch.log_softmax(logits.float(), dim=-1)
        tok = logp.index_fill(1, banned, float("-inf")).argmax(-1)
        return tok, logp.gather(1, tok[:, None]).squeeze(1)
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    probs = logp.exp().index_fill(1, banned, 0.0)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(1, order, sorted_p)
    rows = len(probs) // len(generator)  # one generator per prompt: its group's rows
    tok = torch.cat([
        torch.multinomial(probs[i * rows : (i + 1) * rows], 1, generator=g).squeeze(1)
        for i, g in enumerate(generator)
    ])  # fmt: skip
    return tok, logp.gather(1, tok[:, None]).squeeze(1)


def sample_groups(
    model: Any,
    inputs: Any,
    group: int,
    *,
    max_new_tokens: int,
    eos_ids: Sequence[int],
    pad_id: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | Sequence[int] | None = None,
    decode: Any = None,
    banned_ids: Sequence[int] = (),
    processors: Processors | None = None,
) -> list[list[Sampled]]:
    """``group`` answers for each prompt of ``inputs``: one prefill per prompt, the cache
    expanded ``group`` times, all answers decoded together. ``decode(token_ids) -> str`` turns
    ids into text (without special tokens); ``banned_ids`` are never drawn (image
    placeholders: an answer holding one could not be scored again with its prompt). Seeded:
    equal seeds give equal answers; ``seed`` may be one seed per prompt, so a prompt's group
    does not depend on the other prompts of the batch (nor on how ranks share a batch).
    ``processors(answer_ids, scores) -> scores`` (transformers' logits-processor call, the
    rows' answers so far without the prompt) changes each step's logits before the
    temperature: the decoding aids (``HFVLM.aid_processors``); the log-probabilities are
    then those of the aided distribution."""
    import torch

    if group < 1 or max_new_tokens < 1:
        raise ModelError("sample_groups needs group >= 1 and max_new_tokens >= 1")
    device = inputs["input_ids"].device
    batch = inputs["input_ids"].shape[0]
    seeds = list(seed) if isinstance(seed, Sequence) else [seed]
    if len(seeds) not in (1, batch):
        raise ModelError("sample_groups needs one seed, or one per prompt")
    generator = []
    for s in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(s if s is not None else torch.seed())
        generator.append(g)
    eos = torch.tensor(list(eos_ids), dtype=torch.long, device=device)
    banned = torch.tensor(sorted(set(banned_ids)), dtype=torch.long, device=device)
    with torch.inference_mode():
        prefix = _prefill(model, inputs, _group_index([group] * batch, device))
        logits = prefix.last_logits
        done = torch.zeros(logits.shape[0], dtype=torch.bool, device=device)
        toks: list[torch.Tensor] = []
        lps: list[torch.Tensor] = []
        for step in range(max_new_tokens):
            if processors is not None:
                so_far = torch.stack(toks, dim=1) if toks else done.new_zeros((len(done), 0))
                logits = processors(so_far.long(), logits.float().clone())
            tok, lp = _pick(logits, temperature, top_p, generator, banned)
            tok = tok.masked_fill(done, pad_id)
            toks.append(tok)
            lps.append(lp)
            done = done | torch.isin(tok, eos)
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            logits = _extend(model, prefix, tok[:, None], step).logits[:, -1]
        ids = torch.stack(toks, dim=1).tolist()
        logps = torch.stack(lps, dim=1).tolist()
    out = [_finish(row, lp, set(eos_ids), decode) for row, lp in zip(ids, logps, strict=True)]
    return [out[b * group : (b + 1) * group] for b in range(batch)]


def _finish(row: list[int], logps: list[float], eos: set[int], decode: Any) -> Sampled:
    reason = "length"
    for k, tok in enumerate(row):
        if tok in eos:
            row, logps, reason = row[: k + 1], logps[: k + 1], "stop"
            break
    text = decode(row) if decode is not None else ""
    return Sampled(tuple(row), text, tuple(logps), reason)


def vlm_sample_groups(
    vlm: Any,
    conversations: Sequence[Conversation],
    group: int,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | None = None,
    model: Any = None,
) -> list[list[Sampled]]:
    """``sample_groups`` for an ``HFVLM`` (its processor, end tokens and decoding); ``model``
    replaces the VLM's own module (a peft-wrapped policy, say)."""
    inputs = encode_prompts(vlm, conversations)
    return sample_groups(
        model if model is not None else vlm.model,
        inputs,
        group,
        max_new_tokens=max_new_tokens,
        eos_ids=vlm._eos_ids(),
        pad_id=vlm.tokenizer.pad_token_id or 0,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        decode=lambda ids: vlm.tokenizer.decode(ids, skip_special_tokens=True),
        banned_ids=media_token_ids(vlm.model.config),
    )


def media_token_ids(config: Any) -> list[int]:
    """The ids of a model's image/video placeholder and delimiter tokens (from its config)."""
    ids: set[int] = set()
    for cfg in (config, getattr(config, "text_config", None)):
        for name in dir(cfg) if cfg is not None else ():
            if name.endswith("token_id") and any(
                w in name for w in ("image", "video", "vision", "media")
            ):
                value = getattr(cfg, name, None)
                if isinstance(value, int):
                    ids.add(value)
    return sorted(ids)


def vlm_group_logprobs(
    vlm: Any,
    conversations: Sequence[Conversation],
    completions: Groups,
    *,
    grad: bool = False,
    model: Any = None,
) -> Scored:
    """``group_logprobs`` for an ``HFVLM``: ``completions[b]`` are token-id answers to
    ``conversations[b]``."""
    inputs = encode_prompts(vlm, conversations)
    return group_logprobs(
        model if model is not None else vlm.model,
        inputs,
        completions,
        grad=grad,
        pad_id=vlm.tokenizer.pad_token_id or 0,
    )
