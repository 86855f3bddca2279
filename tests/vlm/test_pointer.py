"""Pointer-guided coordinates (pixelpilot.vlm.pointer) with the bundled model, a real
checkpoint trained with the pointing objective, on synthetic screens it never trained on."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from pixelpilot.agent import factory
from pixelpilot.agent.policy import VLMPolicy
from pixelpilot.agent.sample import parse_answer
from pixelpilot.envs.base import Observation
from pixelpilot.errors import FileFormatError, ModelError
from pixelpilot.tools.frames import CoordinateFrame, clamp_point
from pixelpilot.train.synthetic import render
from pixelpilot.vlm.base import SamplingParams
from pixelpilot.vlm.hf import HFVLM
from pixelpilot.vlm.pointer import PointerGuide
from pixelpilot.vlm.profiles import Declaration, read_declaration, write_declaration

SEED = 7  # a synthetic stream the recipe does not draw (it draws stream 0, and --seed's)
SCREENS = range(12)


@pytest.fixture(scope="module")
def guided(tmp_path_factory: pytest.TempPathFactory) -> HFVLM:
    """The bundled model with whole cells and no read guide: the tests below are about the
    pointing head's own cells (half rows and the read guide have their own tests)."""
    import shutil

    folder = factory.default_model_path()
    assert folder is not None
    copy = tmp_path_factory.mktemp("whole-cells") / "default"
    shutil.copytree(folder, copy)
    data = json.loads((copy / "pixelpilot.json").read_text())
    data.update(pointer_rows=1, read_weight=0.0, read_heads=[])
    (copy / "pixelpilot.json").write_text(json.dumps(data))
    return HFVLM(copy, pointer_weight=50.0)


def _conversation(vlm: HFVLM, index: int) -> tuple[Any, Any, Any]:
    image, sample = render(SEED, index)
    policy = VLMPolicy(vlm)
    policy.reset(sample.instruction)
    return policy.conversation(Observation(image, sample.instruction)), image, sample


def _shape(vlm: HFVLM, screen: tuple[int, int]) -> tuple[int, int]:
    """Rows x columns of the model's own cells (14 or 28 pixels a side) on a screen."""
    cell = vlm.pointer.cell
    return math.ceil(screen[1] / cell), math.ceil(screen[0] / cell)


def _cells(vlm: HFVLM, convs: list[Any]) -> list[Any]:
    inputs = vlm._inputs(convs)
    return vlm.pointer.cells(vlm.model, inputs, [c.images[-1].size for c in convs])


def test_the_cells_are_the_trained_pointing_head(guided: HFVLM) -> None:
    convs, samples = [], []
    for i in SCREENS:
        conv, image, sample = _conversation(guided, i)
        convs.append(conv)
        samples.append(sample)
    grids = _cells(guided, convs)
    cell, hits = guided.pointer.cell, 0
    for grid, sample in zip(grids, samples, strict=True):
        # 160x210: 6 x 8 cells of 28 pixels, or 12 x 15 of 14
        assert grid is not None and tuple(grid.shape) == _shape(guided, (160, 210))
        assert math.isclose(float(grid.sum()), 1.0, rel_tol=1e-4)
        row, col = divmod(int(grid.argmax()), grid.shape[1])
        x1, y1, x2, y2 = sample.box  # the top cell's centre lies on the target
        hits += x1 <= col * cell + cell // 2 <= x2 and y1 <= row * cell + cell // 2 <= y2
    # a misaligned slice of image tokens would point at random: a target covers a few cells
    # of 48 (or of 180); on 14-pixel cells the head may pick any of the target's cells
    assert hits >= len(SCREENS) * 2 // 3, hits


def test_a_large_weight_keeps_the_click_in_the_pointed_cell(guided: HFVLM) -> None:
    for i in SCREENS:
        conv, image, _ = _conversation(guided, i)
        grid = _cells(guided, [conv])[0]
        text = guided.generate([conv], SamplingParams(max_new_tokens=40))[0].text
        action = parse_answer(text, guided.profile.coords, image.size).actions[0]
        col = int(grid.sum(dim=0).argmax())
        row = int(grid[:, col].argmax())
        cell = guided.pointer.cell
        assert (action.y // cell, action.x // cell) == (row, col), text


def test_weight_zero_or_no_preference_decodes_as_before(
    guided: HFVLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    plain = HFVLM(guided.path, pointer_weight=0.0)
    assert plain.pointer is None
    assert HFVLM(guided.path).pointer.weight == 1.0  # what the bundled model declares
    convs = [_conversation(plain, i)[0] for i in range(4)]
    params = SamplingParams(max_new_tokens=40)
    # the guided path (an extra forward pass, a logits processor) with a pointer that likes
    # every cell alike adds nothing: the same answers as plain decoding, token for token
    rows, cols = _shape(guided, convs[0].images[-1].size)
    uniform = [torch.full((rows, cols), 1 / (rows * cols))] * len(convs)
    monkeypatch.setattr(guided.pointer, "cells", lambda *args: uniform)
    assert [g.token_ids for g in guided.generate(convs, params)] == [
        g.token_ids for g in plain.generate(convs, params)
    ]


def test_a_resized_screenshot_is_left_unguided(guided: HFVLM) -> None:
    conv, image, sample = _conversation(guided, 0)
    big = image.resize((image.width * 4, image.height * 4))  # over max_patches: resized
    policy = VLMPolicy(guided)
    policy.reset(sample.instruction)
    grids = _cells(guided, [policy.conversation(Observation(big, sample.instruction)), conv])
    assert grids[0] is None and grids[1] is not None


def test_the_bias_on_x_then_y(guided: HFVLM) -> None:
    import torch

    tokenizer = guided.tokenizer
    screen, cell = (160, 210), guided.pointer.cell
    grid = torch.full(_shape(guided, screen), 0.01)
    # three pointed cells, the same pixels whatever the cell size: 28-pixel cells
    # (3, 2), (6, 2) and (1, 4) and, with 14-pixel cells, their top-left quarters
    k = 28 // cell
    grid[3 * k, 2 * k], grid[6 * k, 2 * k], grid[1 * k, 4 * k] = 0.3, 0.2, 0.1
    grid = grid / grid.sum()
    proc = guided.pointer.processor([grid], [screen], 0, 1)
    numbers = guided.pointer.numbers
    vocab = len(tokenizer)

    def step(prefix: str) -> Any:
        ids = torch.tensor([tokenizer(prefix, add_special_tokens=False)["input_ids"]])
        return proc(ids, torch.zeros(1, vocab))[0]

    def column(value: int) -> int:  # the cell of the pixel the click runs at
        return clamp_point(*guided.profile.coords.to_screen(value, 0, screen), screen)[0] // cell

    def row(value: int) -> int:
        return clamp_point(*guided.profile.coords.to_screen(0, value, screen), screen)[1] // cell

    x = step("Action: click(start_box='(")
    p_col = grid.sum(dim=0)
    for token, value in list(numbers.items())[::37]:
        want = 50.0 * math.log(float(p_col[column(value)] / p_col.max()))
        assert math.isclose(float(x[token]), max(want, -5e5), rel_tol=1e-4, abs_tol=1e-3)
    others = [t for t in range(vocab) if t not in numbers]
    assert not x[others].any()  # only numbers move
    value = next(v for v in numbers.values() if column(v) == 4 * k)
    y = step(f"Action: click(start_box='({value},")
    p_row = grid[:, 4 * k]
    for token, v in list(numbers.items())[::37]:
        want = 50.0 * math.log(float(p_row[row(v)] / p_row.max()))
        assert math.isclose(float(y[token]), want, rel_tol=1e-4, abs_tol=1e-3)
    assert not step("Action: type(content='").any()  # no point due: nothing changes
    assert not step(f"Action: click(start_box='({value},{value})").any()


def test_the_declaration_carries_the_weight(tmp_path: Path) -> None:
    write_declaration(tmp_path, Declaration("grounding", "English", False, 1.5))
    assert read_declaration(tmp_path).pointer_weight == 1.5
    write_declaration(tmp_path, Declaration("grounding", "English", False))
    assert "pointer_weight" not in json.loads((tmp_path / "pixelpilot.json").read_text())
    for bad in ("1", -1, True, None):
        (tmp_path / "pixelpilot.json").write_text(json.dumps({"pointer_weight": bad}))
        with pytest.raises(FileFormatError, match="pointer_weight must be a number >= 0"):
            read_declaration(tmp_path)


def test_a_model_without_image_tokens_refuses_a_weight(tiny_qwen25_dir: Path) -> None:
    assert HFVLM(tiny_qwen25_dir, pointer_weight=0.0).pointer is None
    with pytest.raises(ModelError, match="pointer_weight 1.0 needs image tokens"):
        HFVLM(tiny_qwen25_dir, pointer_weight=1.0)
    with pytest.raises(ValueError, match="finite number"):
        PointerGuide(HFVLM(tiny_qwen25_dir).tokenizer, CoordinateFrame("uitars-1.0"), math.inf)


def test_a_model_with_14_pixel_tokens_is_guided_on_its_own_grid(tmp_path: Path) -> None:
    """Size xs-14 (patches unmerged): the guide reads 12 x 15 cells of 14 pixels from a
    160x210 screenshot, and leans the x towards the pointed 14-pixel column."""
    import torch
    from PIL import Image

    from pixelpilot.vlm.base import Conversation, Message
    from pixelpilot.vlm.tiny import build_tiny

    folder = build_tiny(tmp_path / "m", arch="kimi_k25", size="xs-14", cache=False)
    vlm = HFVLM(folder, pointer_weight=50.0)
    assert (vlm.pointer.cell, vlm.pointer.merge) == (14, 1)
    screen = (160, 210)
    conv = Conversation((Message("user", "Click.", (Image.new("RGB", screen, "white"),)),))
    grid = _cells(vlm, [conv])[0]
    assert grid is not None and tuple(grid.shape) == (15, 12)
    assert math.isclose(float(grid.sum()), 1.0, rel_tol=1e-4)
    pointed = torch.full((15, 12), 1e-4)
    pointed[7, 5] = 1.0
    proc = vlm.pointer.processor([pointed / pointed.sum()], [screen], 0, 1)
    prefix = vlm.tokenizer("Action: click(start_box='(", add_special_tokens=False)["input_ids"]
    x = proc(torch.tensor([prefix]), torch.zeros(1, len(vlm.tokenizer)))[0]
    numbers = vlm.pointer.numbers  # token id -> value
    kept = {value for token, value in numbers.items() if float(x[token]) == 0.0}
    frame = vlm.profile.coords
    pixel = {v: clamp_point(*frame.to_screen(v, 0, screen), screen)[0] for v in numbers.values()}
    inside = {v for v, x in pixel.items() if x // 14 == 5}  # where the click would run
    assert inside and kept == inside  # the numbers of the pointed 14-pixel column, no others


def test_half_rows_split_each_cell_by_the_half_column_and_lean_the_y_to_a_half(
    tmp_path: Path,
) -> None:
    """``pointer_rows`` 2 (round 49): the guide's grid has two rows a cell, the cell's
    probability split by the sigmoid of the half token's logit at its image token (upper,
    lower), and the y's numbers lean to the pointed half row: with a large weight only the
    numbers whose pixel lies in the lower 7 pixels of the pointed 14-pixel cell keep their
    logits. A vocabulary without a half token, or rows other than 1 and 2, is refused."""
    import torch
    from PIL import Image

    from pixelpilot.vlm.base import Conversation, Message
    from pixelpilot.vlm.pointer import half_token
    from pixelpilot.vlm.tiny import build_tiny

    folder = build_tiny(tmp_path / "m", arch="kimi_k25", size="xs-14", cache=False)
    declared = read_declaration(folder)
    from dataclasses import replace

    write_declaration(folder, replace(declared, pointer_weight=50.0, pointer_rows=2))
    vlm = HFVLM(folder)
    assert vlm.pointer.rows == 2 and vlm.pointer.half == half_token(vlm.tokenizer)
    screen = (160, 210)
    conv = Conversation((Message("user", "Click.", (Image.new("RGB", screen, "white"),)),))
    inputs = vlm._inputs([conv])
    with torch.inference_mode():
        logits = vlm.model(**inputs).logits[0]
    positions = (inputs["input_ids"][0] == vlm.pointer.image_token).nonzero().flatten()
    cell = torch.softmax(logits[positions, vlm.pointer.pad_token].float(), 0).reshape(15, 12)
    lower = torch.sigmoid(logits[positions, vlm.pointer.half].float()).reshape(15, 12)
    grid = _cells(vlm, [conv])[0]
    assert tuple(grid.shape) == (30, 12)
    assert torch.allclose(grid[0::2] + grid[1::2], cell, atol=1e-5)  # the halves sum to it
    assert torch.allclose(grid[1::2], cell * lower, atol=1e-5)
    pointed = torch.full((30, 12), 1e-4)
    pointed[2 * 7 + 1, 5] = 1.0  # cell (7, 5), its lower half: pixels y 105..111
    proc = vlm.pointer.processor([pointed / pointed.sum()], [screen], 0, 1)
    frame = vlm.profile.coords
    numbers = vlm.pointer.numbers
    x = next(v for v in numbers.values()
             if clamp_point(*frame.to_screen(v, 0, screen), screen)[0] // 14 == 5)  # fmt: skip
    prefix = vlm.tokenizer(f"Action: click(start_box='({x},", add_special_tokens=False)
    y = proc(torch.tensor([prefix["input_ids"]]), torch.zeros(1, len(vlm.tokenizer)))[0]
    kept = {value for token, value in numbers.items() if float(y[token]) == 0.0}
    pixel = {v: clamp_point(*frame.to_screen(0, v, screen), screen)[1] for v in numbers.values()}
    inside = {v for v, y in pixel.items() if 105 <= y <= 111}
    assert inside and kept == inside
    with pytest.raises(ValueError, match="pointer_rows must be 1 or 2"):
        PointerGuide(vlm.tokenizer, frame, 1.0, (14, 1), rows=3)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "pixelpilot.json").write_text(json.dumps({"pointer_rows": 4}))
    with pytest.raises(FileFormatError, match="pointer_rows must be 1 or 2"):
        read_declaration(tmp_path / "bad")
    assert json.loads((Path(folder) / "pixelpilot.json").read_text())["pointer_rows"] == 2


def test_half_rows_need_a_half_token(
    tiny_qwen25_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pixelpilot.vlm import pointer

    monkeypatch.setattr(pointer, "HALF_TOKENS", ("<|no such token|>",))
    with pytest.raises(ValueError, match=re.escape("pointer_rows 2 needs one of <|no such")):
        PointerGuide(HFVLM(tiny_qwen25_dir).tokenizer, CoordinateFrame("uitars-1.0"), 1.0, rows=2)
