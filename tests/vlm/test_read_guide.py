"""The read guide (pixelpilot.vlm.read_guide) on a real tiny kimi_k25 checkpoint (size xs-14)
with reading heads written as the warm-up writes them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pixelpilot.errors import FileFormatError, ModelError
from pixelpilot.vlm.hf import HFVLM
from pixelpilot.vlm.profiles import Declaration, read_declaration, write_declaration
from pixelpilot.vlm.read_guide import ReadHead, looked_for, quoted_word
from pixelpilot.vlm.words import BUCKETS, length_class, word_class

SCREEN = (160, 210)  # 12 x 15 cells of 14 pixels


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pixelpilot.vlm.tiny import build_tiny

    root = tmp_path_factory.mktemp("read-guide")
    return build_tiny(root / "m", arch="kimi_k25", size="xs-14", cache=False)


def _hidden(folder: Path) -> int:
    return json.loads((folder / "config.json").read_text())["text_config"]["hidden_size"]


def _head(
    path: Path, hidden: int, kind: str = "word", taught: list[int] | None = None, key: str = ""
) -> Path:
    """A head file as the warm-up writes one: random weights, ``kind`` classes, and the
    classes it was taught when ``taught`` is given (under ``key``: ``classes`` as a named head
    lists them, ``taught`` as the length head does)."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    tensors = {"weight": torch.randn(BUCKETS, hidden, generator=gen) * 3,
               "bias": torch.zeros(BUCKETS)}  # fmt: skip
    if taught is not None:
        tensors[key or "classes"] = torch.tensor(taught)
    save_file(tensors, str(path), metadata={"classes": kind})
    return path


def _declare(folder: Path, heads: list[str], weight: float) -> None:
    write_declaration(folder, Declaration("grounding", "English", False, 1.0,
                                          read_heads=tuple(heads), read_weight=weight))  # fmt: skip


def _conv(text: str, seed: int = 0) -> Any:
    import numpy as np
    from PIL import Image

    from pixelpilot.vlm.base import Conversation, Message

    pixels = np.random.default_rng(seed).integers(0, 256, (SCREEN[1], SCREEN[0], 3), np.uint8)
    return Conversation((Message("user", text, (Image.fromarray(pixels),)),))


def _pointer_and_embeds(vlm: HFVLM, conv: Any) -> tuple[Any, Any]:
    """The pointing head's cell probabilities and the decoder's input embeddings at the
    screenshot's image tokens, computed here without the guide."""
    import torch

    inputs = vlm._inputs([conv])
    seen: dict[str, Any] = {}
    hook = vlm.model.model.language_model.register_forward_pre_hook(
        lambda m, a, k: seen.__setitem__("e", k["inputs_embeds"]), with_kwargs=True
    )
    try:
        with torch.inference_mode():
            logits = vlm.model(**inputs).logits
    finally:
        hook.remove()
    ids = inputs["input_ids"][0]
    positions = (ids == vlm.pointer.image_token).nonzero().flatten()[-15 * 12 :]
    p = torch.softmax(logits[0, positions, vlm.tokenizer.pad_token_id].float(), 0)
    return p, seen["e"][0, positions].float()


def test_the_cells_are_the_pointer_times_the_heads_reading(folder: Path, tmp_path: Path) -> None:
    import shutil

    import torch

    model = tmp_path / "m"
    shutil.copytree(folder, model)
    head = _head(model / "word-head.safetensors", _hidden(model))
    _declare(model, ["word-head.safetensors"], 2.0)
    vlm = HFVLM(model)
    assert vlm.pointer is not None and vlm.pointer.reader is not None
    conv = _conv('Click on the link "lorem".')
    grid = vlm.pointer_cells([conv], vlm._inputs([conv]))[0]
    p, e = _pointer_and_embeds(vlm, conv)
    weights = ReadHead(head)
    r = torch.softmax(e @ weights.weight.T + weights.bias, -1)[:, word_class("lorem")]
    want = p * (r / r.max()) ** 2
    want = (want / want.sum()).reshape(15, 12)
    assert torch.allclose(grid, want, rtol=1e-4, atol=1e-7)
    assert not torch.allclose(grid, p.reshape(15, 12), rtol=1e-2)  # it did weigh them
    assert vlm.pointer.reader.embeds is None  # not kept past the batch
    # a large weight puts the top cell where the head reads the word best
    strong = HFVLM(model, read_weight=200.0)
    grid = strong.pointer_cells([conv], strong._inputs([conv]))[0]
    assert int(grid.argmax()) == int(r.argmax())


def test_no_single_quoted_word_leaves_the_pointer_alone(folder: Path, tmp_path: Path) -> None:
    import shutil

    import torch

    model = tmp_path / "m"
    shutil.copytree(folder, model)
    _head(model / "word-head.safetensors", _hidden(model))
    _declare(model, ["word-head.safetensors"], 2.0)
    guided, plain = HFVLM(model), HFVLM(model, read_weight=0.0)
    assert plain.pointer.reader is None
    for text in ("Click the button.", 'Click "ab" then "cd".', 'Click "two words".', 'Click "!".',
                 'Enter "lorem" into the text field.'):  # fmt: skip
        conv = _conv(text)
        a = guided.pointer_cells([conv], guided._inputs([conv]))[0]
        b = plain.pointer_cells([conv], plain._inputs([conv]))[0]
        assert torch.equal(a, b), text


def test_the_declaration_carries_the_heads(tmp_path: Path) -> None:
    _declare(tmp_path, ["a.safetensors", "b.safetensors"], 1.5)
    got = read_declaration(tmp_path)
    assert (got.read_heads, got.read_weight) == (("a.safetensors", "b.safetensors"), 1.5)
    base = {"format": "pixelpilot.model", "version": 1, "pointer_weight": 1.0}
    for bad, problem in [
        ({"read_heads": ["../x.safetensors"], "read_weight": 1}, "plain file name"),
        ({"read_heads": "x.safetensors", "read_weight": 1}, "list of file names"),
        ({"read_heads": ["x.safetensors"], "read_weight": -1}, "read_weight must be a number"),
        ({"read_heads": ["x.safetensors"], "read_weight": True}, "read_weight must be a number"),
        ({"read_weight": 1}, "needs read_heads"),
        ({"read_heads": ["x.safetensors"], "read_weight": 1, "pointer_weight": 0},
         "needs pointer_weight"),
    ]:  # fmt: skip
        (tmp_path / "pixelpilot.json").write_text(json.dumps(base | bad))
        with pytest.raises(FileFormatError, match=problem):
            read_declaration(tmp_path)


def test_a_missing_or_wrong_head_is_a_one_line_error(folder: Path, tmp_path: Path) -> None:
    import shutil

    model = tmp_path / "m"
    shutil.copytree(folder, model)
    _declare(model, ["word-head.safetensors"], 1.0)
    with pytest.raises(ModelError, match="read head word-head.safetensors is not in the folder"):
        HFVLM(model)
    _head(model / "word-head.safetensors", _hidden(model) + 1)
    with pytest.raises(ModelError, match="reads .* numbers a cell"):
        HFVLM(model)
    (model / "word-head.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        HFVLM(model)
    _head(model / "word-head.safetensors", _hidden(model), kind="width")
    with pytest.raises(ModelError, match="classes 'width'"):
        HFVLM(model)
    (model / "word-head.safetensors").unlink()
    (model / "word-head.safetensors").symlink_to(_head(tmp_path / "out.st", _hidden(model)))
    with pytest.raises(ModelError, match="leads out of"):
        HFVLM(model)


def test_a_head_names_the_classes_it_was_taught(tmp_path: Path) -> None:
    word = _head(tmp_path / "w.st", 8)
    assert ReadHead(word).target("Lorem,") == word_class("lorem")
    assert ReadHead(word).target("...") is None
    taught = _head(tmp_path / "t.st", 8, taught=[word_class("ok")])
    assert ReadHead(taught).target("OK") == word_class("ok")
    assert ReadHead(taught).target("lorem") is None
    length = _head(tmp_path / "l.st", 8, kind="length")
    assert ReadHead(length).target("Lorem") == length_class("Lorem") == 11
    shown = _head(tmp_path / "s.st", 8, taught=[word_class("lorem")], key="taught")
    assert ReadHead(shown).target("Lorem") == word_class("lorem")
    assert ReadHead(shown).target("Submit") is None  # a class no screen showed: no answer


def test_the_quoted_word() -> None:
    assert quoted_word(["lorem"]) == "lorem"
    assert quoted_word([" ipsum "]) == "ipsum"
    assert quoted_word([]) is None
    assert quoted_word(["a", "b"]) is None
    assert quoted_word(["two words"]) is None
    # a click's quoted word is looked for; a typing instruction's quote is what to type
    prompt = "You are a GUI agent. Click where asked.\n## User Instruction\n"
    assert looked_for(prompt + 'Click on the link "lorem".') == "lorem"
    assert looked_for(prompt + 'Close the dialog by clicking "OK".') == "OK"
    assert looked_for(prompt + 'Enter "lorem" into the text field.') is None
    assert looked_for('Enter "lorem" and press Submit.') is None
    assert looked_for('CLICK on "ipsum".') == "ipsum"
