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


def _fitted_head(path: Path, hidden: int, span: int, words: list[str], inner: int = 0) -> Path:
    """A head file as ``pixelpilot.train.read_fit`` writes one: ``span`` cells each side, a
    hidden layer of ``inner`` units (none at 0), a row for each of ``words``' classes."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(1)
    rows = sorted({word_class(w) for w in words})
    width = (2 * span + 1) * hidden
    tensors = {"weight": torch.randn(len(rows), inner or width, generator=gen) * 3,
               "bias": torch.zeros(len(rows)), "rows": torch.tensor(rows)}  # fmt: skip
    if inner:
        tensors |= {"inner_weight": torch.randn(inner, width, generator=gen),
                    "inner_bias": torch.zeros(inner)}  # fmt: skip
    save_file(tensors, str(path), metadata={"classes": "word", "span": str(span),
                                            "words": json.dumps(words)})  # fmt: skip
    return path


def _by_hand(head: ReadHead, cells: Any, cols: int) -> Any:
    """The head's log-probabilities computed cell by cell: each cell's embedding with its row
    neighbours' (zeros past the edge), through the hidden layer, then the rows."""
    import torch

    out = []
    for i in range(len(cells)):
        parts = []
        for d in range(-head.span, head.span + 1):
            j = i + d
            same_row = 0 <= j < len(cells) and j // cols == i // cols
            parts.append(cells[j] if same_row else torch.zeros_like(cells[i]))
        x = torch.cat(parts)
        if head.inner is not None:
            x = torch.nn.functional.gelu(head.inner[0] @ x + head.inner[1])
        out.append(torch.log_softmax(head.weight @ x + head.bias, -1))
    return torch.stack(out)


def test_a_fitted_head_reads_its_row_neighbours_through_its_hidden_layer(tmp_path: Path) -> None:
    import torch

    words = ["lorem", "Ipsum"]
    for inner in (0, 5):
        head = ReadHead(_fitted_head(tmp_path / f"f{inner}.st", 4, 1, words, inner))
        assert (head.span, head.hidden) == (1, 4)
        assert (head.inner is not None) == bool(inner)
        cells = torch.randn(12, 4, generator=torch.Generator().manual_seed(2))
        got = head.log_probs(cells, cols=4)
        assert got.shape == (12, 2)
        assert torch.allclose(got, _by_hand(head, cells, 4), atol=1e-5)
        # its rows are its words' classes, in order; a word it was not fitted on has no row,
        # even where its hashed class is a fitted word's
        order = sorted(words, key=lambda w: word_class(w))
        assert [head.target(w) for w in order] == [0, 1]
        assert head.target("ipsum,") == head.target("Ipsum")
        assert head.target("dolor") is None
    with pytest.raises(ValueError, match="3 cells do not make rows of 2"):
        head.log_probs(torch.zeros(3, 4), cols=2)


def test_a_fitted_head_guides_the_pointer(folder: Path, tmp_path: Path) -> None:
    import shutil

    import torch

    model = tmp_path / "m"
    shutil.copytree(folder, model)
    _fitted_head(model / "fit-head.safetensors", _hidden(model), 2, ["lorem", "dolor"], 6)
    _declare(model, ["fit-head.safetensors"], 2.0)
    vlm = HFVLM(model)
    conv = _conv('Click on the link "lorem".', seed=3)
    grid = vlm.pointer_cells([conv], vlm._inputs([conv]))[0]
    p, e = _pointer_and_embeds(vlm, conv)
    head = ReadHead(model / "fit-head.safetensors")
    r = _by_hand(head, e, 12)[:, head.target("lorem")].exp()
    want = p * (r / r.max()) ** 2
    assert torch.allclose(grid, (want / want.sum()).reshape(15, 12), rtol=1e-4, atol=1e-7)
    assert not torch.allclose(grid, p.reshape(15, 12), rtol=1e-2)  # it did weigh them
    # a word the head was not fitted on leaves the pointer alone
    conv = _conv('Click on the link "sit".', seed=3)
    plain = HFVLM(model, read_weight=0.0)
    assert torch.equal(vlm.pointer_cells([conv], vlm._inputs([conv]))[0],
                       plain.pointer_cells([conv], plain._inputs([conv]))[0])  # fmt: skip


def test_a_bad_fitted_head_is_a_one_line_error(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    good = {"weight": torch.zeros(2, 12), "bias": torch.zeros(2), "rows": torch.tensor([3, 9])}
    for tensors, meta, problem in [
        (good, {"span": "2"}, "span '2' is not a count of cells that divides its 12 inputs"),
        (good, {"span": "-1"}, "span '-1' is not a count"),
        (good | {"rows": torch.tensor([3])}, {}, "rows names 1 classes for 2 rows"),
        (good, {"words": "lorem"}, "words is not a JSON list of texts"),
        (good, {"words": "[1, 2]"}, "words is not a JSON list of texts"),
        (good | {"inner_weight": torch.zeros(5, 4)}, {}, "hidden layer needs"),
        (good | {"inner_weight": torch.zeros(12, 4), "inner_bias": torch.zeros(3)}, {},
         "hidden layer needs"),
    ]:  # fmt: skip
        path = tmp_path / "bad.st"
        save_file(tensors, str(path), metadata={"classes": "word", **meta})
        with pytest.raises(ValueError, match=problem):
            ReadHead(path)
    save_file(good | {"inner_weight": torch.zeros(12, 6), "inner_bias": torch.zeros(12)},
              str(tmp_path / "ok.st"), metadata={"classes": "word", "span": "1"})  # fmt: skip
    assert ReadHead(tmp_path / "ok.st").hidden == 2


def test_input_embeds_can_stop_the_pass_at_the_decoders_input(folder: Path) -> None:
    """``input_embeds(stop=True)`` (the read fit's feature pass) records the same decoder
    inputs as a full pass, and no decoder layer runs."""
    import torch

    from pixelpilot.vlm.read_guide import input_embeds

    vlm = HFVLM(folder, pointer_weight=0.0, read_weight=0.0)
    inputs = vlm._inputs([_conv("x", seed=3)])
    decoder = vlm.model.model.language_model
    layer_calls = []
    hook = decoder.layers[0].register_forward_pre_hook(lambda m, a: layer_calls.append(1))
    try:
        with torch.inference_mode(), input_embeds(decoder) as full:
            vlm.model(**inputs)
        assert len(layer_calls) == 1
        after = []
        with torch.inference_mode(), input_embeds(decoder, stop=True) as stopped:
            vlm.model(**inputs)
            after.append("ran")  # the block ends with the pass
    finally:
        hook.remove()
    assert len(layer_calls) == 1 and after == []
    assert torch.equal(full["inputs_embeds"], stopped["inputs_embeds"])
