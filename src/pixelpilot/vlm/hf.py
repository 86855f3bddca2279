"""``HFVLM``: a local transformers checkpoint behind the ``VLM`` protocol.

Loads a checkpoint folder with its processor and the family's model class (Qwen2.5-VL /
UI-TARS-1.5, Qwen2-VL / UI-TARS 1.0, Chameleon, Kimi-VL through remote code), generates in
left-padded batches with per-request images, stop strings and seeded sampling, and gives
per-token log-probabilities of completions for training.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pixelpilot.errors import DependencyNotInstalled, ModelError
from pixelpilot.vlm.base import Completion, Conversation, Generation, ModelProfile, SamplingParams
from pixelpilot.vlm.masking import AnswerMask, TokenIndex, token_index
from pixelpilot.vlm.profiles import Family, family_of, profile_for, read_declaration
from pixelpilot.vlm.quoted import QuotedTyping, instruction_quotes
from pixelpilot.vlm.wellformed import ActionSyntax

MAX_ASPECT = 200  # smart_resize's limit on the long side over the short side


def _require_torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise DependencyNotInstalled("torch/transformers", extra="models") from exc
    return torch


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise ModelError(f"no checkpoint folder at {path}")
    cfg = path / "config.json"
    if not cfg.exists():
        raise ModelError(f"{path} has no config.json; is it a transformers checkpoint folder?")
    try:
        return json.loads(cfg.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{cfg} is not valid JSON: {exc}") from exc


def _family(config: dict[str, Any], path: Path) -> Family:
    model_type = str(config.get("model_type", ""))
    family = family_of(model_type)
    if family is not None:
        return family
    if not any(k in config for k in ("vision_config", "vq_config", "visual")):
        raise ModelError(
            f"{path} holds a text-only model (model_type {model_type!r}); "
            "a GUI agent needs a vision-language checkpoint"
        )
    from pixelpilot.vlm.profiles import FAMILIES

    raise ModelError(
        f"unsupported model_type {model_type!r} in {path}; supported: {', '.join(FAMILIES)}"
    )


def _screens(convs: Sequence[Conversation]) -> list[tuple[int, int]]:
    """Each conversation's current screen size: its last image's, (0, 0) without one."""
    return [c.images[-1].size if c.images else (0, 0) for c in convs]


class HFVLM:
    """A transformers checkpoint folder as a ``VLM`` (and ``TrainableVLM``)."""

    def __init__(
        self,
        path: str | Path,
        *,
        device: str | None = None,
        dtype: str | None = None,
        attn_implementation: str = "sdpa",
        batch_size: int = 8,
        max_images: int | None = None,
        profile: ModelProfile | None = None,
        pointer_weight: float | None = None,
        read_weight: float | None = None,
        well_formed_points: bool | None = None,
        quoted_typing: bool | None = None,
        well_formed_actions: bool | None = None,
    ) -> None:
        self.path = Path(path)
        config = _read_config(self.path)
        self.family = _family(config, self.path)
        declaration = read_declaration(self.path)  # a bad pixelpilot.json fails before loading
        torch = _require_torch()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = getattr(torch, dtype) if dtype else (
            torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        )  # fmt: skip
        self.batch_size = batch_size
        self.processor = self._load_processor()
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"
        if not getattr(self.processor, "chat_template", None):
            raise ModelError(f"the processor in {self.path} has no chat template")
        self.model = self._load_model(attn_implementation)
        base = profile or profile_for(self.family, self.processor, self.path.name, declaration)
        if max_images is not None:
            from dataclasses import replace

            base = replace(base, max_images=max_images)
        self.profile = base
        weight = declaration.pointer_weight if pointer_weight is None else pointer_weight
        self.pointer = self._pointer(weight, declaration.pointer_rows)
        read = declaration.read_weight if read_weight is None else read_weight
        if self.pointer is not None and read:
            self.pointer.reader = self._reader(declaration.read_heads, read)
        points = (
            declaration.well_formed_points if well_formed_points is None else well_formed_points
        )
        quoted = declaration.quoted_typing if quoted_typing is None else quoted_typing
        calls = (
            declaration.well_formed_actions if well_formed_actions is None else well_formed_actions
        )
        # the constraints read one index of the vocabulary, decoded once
        index = token_index(self.tokenizer) if points or quoted or calls else None
        self.points = self._points(index) if points else None
        self.quoted = QuotedTyping(self.tokenizer, index) if quoted else None
        self.calls = ActionSyntax(self.tokenizer, index, self._eos_ids()) if calls else None

    # -- loading -------------------------------------------------------------------------

    def _load_processor(self) -> Any:
        from pixelpilot.vlm.processors import load_processor

        try:
            proc = load_processor(self.path, trust_remote_code=self.family.remote_code)
        except OSError as exc:
            raise ModelError(f"cannot load the processor of {self.path}: {exc}") from exc
        if not hasattr(proc, "tokenizer") or not hasattr(proc, "image_processor"):
            raise ModelError(f"{self.path} has a tokenizer but no image processor (text-only?)")
        if not getattr(proc, "chat_template", None):
            proc.chat_template = getattr(proc.tokenizer, "chat_template", None)
        return proc

    def _load_model(self, attn_implementation: str) -> Any:
        import transformers

        kw: dict[str, Any] = {"dtype": self.dtype, "attn_implementation": attn_implementation}
        if self.family.remote_code:
            cls = transformers.AutoModelForCausalLM
            kw["trust_remote_code"] = True
        else:
            cls = getattr(transformers, self.family.model_class, None)
            cls = cls or transformers.AutoModelForImageTextToText
        try:
            model = cls.from_pretrained(self.path, **kw)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load the model weights in {self.path}: {exc}") from exc
        if attn_implementation == "sdpa" and not self.family.remote_code:
            # the same attention, without the padding's work (transformers' own classes only)
            from pixelpilot.vlm.attention import use_unpadded_attention

            use_unpadded_attention(model)
        return model.to(self.device).eval()

    def _pointer(self, weight: float, rows: int = 1) -> Any:
        """The pointer-guided decoding (``pixelpilot.vlm.pointer``) at ``weight`` (``rows``
        2: half rows), or None."""
        from pixelpilot.vlm.pointer import PointerGuide, token_grid

        if weight == 0:  # off: no number table to build at every load
            return None
        try:
            grid = token_grid(self.processor)
            guide = PointerGuide(self.tokenizer, self.profile.coords, weight, grid, rows)
        except ValueError as exc:
            raise ModelError(f"{self.path}: {exc}") from None
        if not guide.usable:
            raise ModelError(
                f"{self.path}: pointer_weight {weight} needs image tokens and a [PAD] token"
            )
        return guide

    def _reader(self, heads: Sequence[str], weight: float) -> Any:
        """The read guide (``pixelpilot.vlm.read_guide``) of the heads the folder declares."""
        from pixelpilot import untrusted
        from pixelpilot.vlm.read_guide import ReadGuide, ReadHead

        real = self.path.resolve()
        try:
            files = [untrusted.file_in(real, h) for h in heads]  # plain names: the declaration's
            missing = [h for h, f in zip(heads, files, strict=True) if f is None]
            if missing:
                raise ValueError(f"read head {missing[0]} is not in the folder")
            return ReadGuide(self.model, [ReadHead(f) for f in files if f], weight)
        except ValueError as exc:
            raise ModelError(f"{self.path}: {exc}") from None

    def _points(self, index: TokenIndex | None) -> Any:
        """The well-formed points constraint (``pixelpilot.vlm.points``)."""
        from pixelpilot.vlm.points import PointSyntax

        try:
            return PointSyntax(self.tokenizer, index)
        except ValueError as exc:
            raise ModelError(f"{self.path}: well_formed_points: {exc}") from None

    # -- prompts -------------------------------------------------------------------------

    def _check_images(self, conv: Conversation) -> None:
        images = conv.images
        limit = self.profile.max_images
        if limit is not None and len(images) > limit:
            raise ModelError(
                f"a conversation has {len(images)} images, over this model's limit of {limit}; "
                "lower the profile's history_images"
            )
        for im in images:
            w, h = im.size
            if min(w, h) < 1 or max(w, h) / min(w, h) > MAX_ASPECT:
                raise ModelError(f"image of {w}x{h} is over the aspect-ratio limit {MAX_ASPECT}")

    def prompt_text(self, conv: Conversation) -> str:
        """The chat-formatted prompt of ``conv``, ending with the assistant turn's start."""
        messages = []
        for m in conv.messages:
            content: list[dict[str, str]] = [{"type": "image"} for _ in m.images]
            if m.text:
                content.append({"type": "text", "text": m.text})
            messages.append({"role": m.role, "content": content})
        return self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def _inputs(self, convs: Sequence[Conversation]) -> Any:
        for conv in convs:
            self._check_images(conv)
        texts = [self.prompt_text(c) for c in convs]
        images = [im.convert("RGB") for c in convs for im in c.images]
        try:
            batch = self.processor(
                text=texts, images=images or None, padding=True, return_tensors="pt"
            )
        except ValueError as exc:
            raise ModelError(f"the processor rejected the input: {exc}") from exc
        return batch.to(self.device)

    # -- generation ----------------------------------------------------------------------

    def generate(
        self, conversations: list[Conversation], params: SamplingParams | None = None
    ) -> list[Generation]:
        params = params or SamplingParams()
        torch = _require_torch()
        if params.seed is not None:
            torch.manual_seed(params.seed)
        out: list[Generation] = []
        for i in range(0, len(conversations), self.batch_size):
            out += self._generate_batch(conversations[i : i + self.batch_size], params)
        return out

    def _generate_batch(
        self, convs: Sequence[Conversation], params: SamplingParams
    ) -> list[Generation]:
        torch = _require_torch()
        start = time.perf_counter()
        inputs = self._inputs(convs)
        eos = self._eos_ids()
        kw: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "num_return_sequences": params.n,
            "eos_token_id": eos,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if params.temperature > 0:
            kw |= {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p}
        else:
            kw |= {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        if params.stop:
            kw |= {"stop_strings": list(params.stop), "tokenizer": self.tokenizer}
        width = inputs["input_ids"].shape[1]
        cells = self.pointer_cells(convs, inputs)
        processors = self.aid_processors(convs, params.n, width, cells)
        if processors:
            from transformers import LogitsProcessorList

            kw["logits_processor"] = LogitsProcessorList(processors)
        with torch.inference_mode():
            seqs = self.model.generate(**inputs, **kw)
        new = seqs[:, inputs["input_ids"].shape[1] :].tolist()
        elapsed = time.perf_counter() - start
        timing = {"generate": elapsed / len(new), "batch": elapsed, "batch_size": len(convs)}
        return [self._finish(row, eos, params, timing) for row in new]

    @property
    def aided(self) -> bool:
        """Whether any decoding aid is on (the declaration's, unless the caller turned it off)."""
        return any(a is not None for a in (self.points, self.quoted, self.calls, self.pointer))

    def pointer_cells(self, convs: Sequence[Conversation], inputs: Any) -> list[Any] | None:
        """The pointer guide's cell probabilities of each conversation's last screenshot
        (``PointerGuide.cells``; one forward pass over ``inputs``), or None with the guide off."""
        if self.pointer is None:
            return None
        words = None
        if self.pointer.reader is not None:
            from pixelpilot.vlm.read_guide import looked_for

            words = [looked_for(c.messages[0].text) if c.messages else None for c in convs]
        return self.pointer.cells(self.model, inputs, _screens(convs), words)

    def aid_processors(
        self, convs: Sequence[Conversation], n: int, prompt_len: int, cells: list[Any] | None
    ) -> list[Any]:
        """The logits processors of the decoding aids that are on, for ``n`` answers to each
        of ``convs`` whose rows hold ``prompt_len`` prompt tokens before the answer: one mask
        of the constraints first, so the pointer guide (given its ``cells``) biases only what
        may be written."""
        processors: list[Any] = []
        rules: list[Any] = []
        if self.points is not None:  # what may be written; numbers within the frame
            frame = self.profile.coords
            sizes = [frame.model_size(c.images[-1].size) if c.images else None for c in convs]
            rules.append(self.points.rule(sizes, n))
        if self.quoted is not None:
            quotes = [instruction_quotes(c.messages[0].text) if c.messages else [] for c in convs]
            rules.append(self.quoted.rule(quotes, n))
        if self.calls is not None:  # after the values' own rules: it leaves values free
            rules.append(self.calls.rule)
        if rules:
            processors.append(AnswerMask(self.tokenizer, prompt_len, rules))
        if self.pointer is not None and cells is not None:
            processors.append(self.pointer.processor(cells, _screens(convs), prompt_len, n))
        return processors

    def _eos_ids(self) -> list[int]:
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    def _finish(
        self, row: list[int], eos: list[int], params: SamplingParams, timing: dict[str, float]
    ) -> Generation:
        reason = "length"
        for k, tok in enumerate(row):
            if tok in eos:
                row, reason = row[: k + 1], "stop"
                break
        else:
            pad = self.tokenizer.pad_token_id
            while row and row[-1] == pad and pad not in eos:
                row, reason = row[:-1], "stop"  # finished early by a stop string
        text = self.tokenizer.decode(row, skip_special_tokens=True)
        for s in params.stop:
            cut = text.find(s)
            if cut >= 0:
                text, reason = text[:cut], "stop"
        return Generation(text, tuple(row), reason, dict(timing))

    # -- log-probabilities ---------------------------------------------------------------

    def _completion_ids(self, completion: Completion) -> list[int]:
        if isinstance(completion, str):
            return self.tokenizer(completion, add_special_tokens=False)["input_ids"]
        return [int(t) for t in completion]

    def log_distributions(
        self,
        conversations: list[Conversation],
        completions: list[Completion],
        *,
        grad: bool = False,
    ) -> list[Any]:
        """Log-softmax over the vocabulary at each completion token: ``[len, vocab]`` each."""
        if len(conversations) != len(completions):
            raise ModelError("logprobs needs one completion per conversation")
        torch = _require_torch()
        out: list[Any] = []
        ctx = torch.enable_grad() if grad else torch.inference_mode()
        with ctx:
            for i in range(0, len(conversations), self.batch_size):
                convs = conversations[i : i + self.batch_size]
                comps = [self._completion_ids(c) for c in completions[i : i + self.batch_size]]
                out += self._score_batch(convs, comps)
        return out

    def logprobs(
        self,
        conversations: list[Conversation],
        completions: list[Completion],
        *,
        grad: bool = False,
    ) -> list[Any]:
        """Per-token log-probability (1-D float32 tensor) of each completion given its
        conversation; ``completions`` are texts or the token ids ``generate`` returned.
        With ``grad=True`` the tensors carry gradients to the model's parameters."""
        dists = self.log_distributions(conversations, completions, grad=grad)
        ids = [self._completion_ids(c) for c in completions]
        torch = _require_torch()
        return [
            d.gather(1, torch.tensor(t, device=d.device).view(-1, 1)).squeeze(1)
            if t else d.new_zeros(0)
            for d, t in zip(dists, ids, strict=True)
        ]  # fmt: skip

    def _score_batch(self, convs: Sequence[Conversation], comps: list[list[int]]) -> list[Any]:
        torch = _require_torch()
        inputs = dict(self._inputs(convs))
        mask = inputs["attention_mask"]
        rows = []
        for b, comp in enumerate(comps):
            keep = mask[b].bool()
            row = {k: inputs[k][b][keep] for k in inputs if _is_token_aligned(inputs, k)}
            for k, value in row.items():
                if k == "input_ids":
                    extra = torch.tensor(comp, dtype=value.dtype, device=value.device)
                else:  # attention mask 1, token-type ids 0 (text)
                    extra = torch.full((len(comp),), int(k == "attention_mask"), dtype=value.dtype)
                row[k] = torch.cat([value, extra.to(value.device)])
            rows.append(row)
        length = max(len(r["input_ids"]) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        for k in rows[0]:
            fill = pad if k == "input_ids" else 0
            inputs[k] = torch.stack([_left_pad(r[k], length, fill) for r in rows])
        logits = self.model(**inputs).logits.float()
        dists = []
        for b, comp in enumerate(comps):
            n = len(comp)
            span = logits[b, length - n - 1 : length - 1]
            dists.append(torch.log_softmax(span, dim=-1))
        return dists

    # -- training: cached prompt inputs + completion log-probabilities --------------------

    def encode_prompt(self, conv: Conversation) -> dict[str, Any]:
        """The processor's inputs for one conversation: one row, no padding, on the CPU (what
        training computes once per sample and caches)."""
        return {k: v.detach().cpu() for k, v in dict(self._inputs([conv])).items()}

    def completion_logprobs(
        self,
        prompts: Sequence[dict[str, Any]],
        completions: Sequence[Sequence[int]],
        *,
        full: bool = False,
    ) -> list[Any]:
        """Per-token log-probabilities (1-D float32, with gradients when enabled) of
        ``completions[i]`` after the encoded prompt ``prompts[i]`` (``encode_prompt``), in one
        left-padded forward pass that keeps only the completion positions' logits. With
        ``full``, the whole log-softmax at each completion position (``[len, vocab]``), for
        losses that credit other tokens than the target (soft coordinate targets)."""
        torch = _require_torch()
        rows, images = [], {}
        for enc in prompts:
            for k, v in enc.items():
                if not _is_token_aligned(enc, k):
                    images.setdefault(k, []).append(v)
            rows.append({k: v[0] for k, v in enc.items() if _is_token_aligned(enc, k)})
        for row, comp in zip(rows, completions, strict=True):
            for k, value in row.items():
                fill = list(comp) if k == "input_ids" else [int(k == "attention_mask")] * len(comp)
                row[k] = torch.cat([value, torch.tensor(fill, dtype=value.dtype)])
        length = max(len(r["input_ids"]) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        inputs = {
            k: torch.stack([_left_pad(r[k], length, pad if k == "input_ids" else 0) for r in rows])
            for k in rows[0]
        }
        inputs |= {k: torch.cat(v) for k, v in images.items()}
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        keep = max(len(c) for c in completions) + 1
        if _keeps_logits(self.model):
            logits = self.model(**inputs, logits_to_keep=keep).logits.float()
        else:
            logits = self.model(**inputs).logits[:, -keep:].float()
        if full:
            return [
                torch.log_softmax(logits[b, keep - len(comp) - 1 : keep - 1], dim=-1)
                for b, comp in enumerate(completions)
            ]
        out = []
        for b, comp in enumerate(completions):
            n = len(comp)
            span = logits[b, keep - n - 1 : keep - 1]
            target = torch.tensor(list(comp), device=span.device).view(-1, 1)
            out.append(torch.log_softmax(span, dim=-1).gather(1, target).squeeze(1))
        return out


def _is_token_aligned(inputs: dict[str, Any], key: str) -> bool:
    ids = inputs["input_ids"]
    value = inputs[key]
    return hasattr(value, "shape") and tuple(value.shape) == tuple(ids.shape)


def _keeps_logits(model: Any) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (through a PEFT wrapper too)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(type(base).forward).parameters


def _left_pad(t: Any, length: int, fill: int) -> Any:
    import torch

    if len(t) == length:
        return t
    pad = torch.full((length - len(t),), fill, dtype=t.dtype, device=t.device)
    return torch.cat([pad, t])
