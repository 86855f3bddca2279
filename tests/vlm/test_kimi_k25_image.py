"""The PIL/numpy Kimi K2.5 image processor: hand-computed cases, saving and loading, and a
comparison with transformers' own (torchvision) processor where torchvision imports."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pixelpilot.vlm.kimi_k25_image import Kimi_K25ImageProcessorPil, navit_resize


def _ramp(w: int, h: int) -> Image.Image:
    """Red = 8 * x, green = 10 * y, blue = 200."""
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = (8 * np.arange(w))[None, :]
    a[..., 1] = (10 * np.arange(h))[:, None]
    a[..., 2] = 200
    return Image.fromarray(a)


def _norm(v: int) -> float:
    return (v / 255 - 0.5) / 0.5


@pytest.mark.parametrize(
    ("hw", "budget", "side", "resized", "padded"),
    [
        ((210, 160), 256, 512, (210, 160), (224, 168)),  # MiniWoB: native size, 48 tokens
        ((720, 1280), 256, 512, (169, 300), (196, 308)),  # 51x91 patches: scale sqrt(256/4641)
        ((100, 100), 16384, 4, (56, 56), (56, 56)),  # per-side budget: 4 patches of 14
        ((5, 5), 256, 512, (5, 5), (28, 28)),  # never upscaled; padded to one merged token
    ],
)
def test_navit_resize_by_hand(hw, budget, side, resized, padded):
    assert navit_resize(*hw, 14, 2, budget, side) == (resized, padded)


def test_hand_computed_pixels_and_grid():
    ip = Kimi_K25ImageProcessorPil(image_mean=[0.5] * 3, image_std=[0.5] * 3)
    out = ip(images=[_ramp(30, 20)], return_tensors="np")
    pv, grid = out["pixel_values"], out["image_grid_thw"]
    # 20x30 stays as it is, padded to 28x56: 2 rows x 4 columns of 14-pixel patches.
    assert grid.tolist() == [[1, 2, 4]] and pv.shape == (8, 3, 14, 14)
    assert pv.dtype == np.float32
    # Patch 1 is row 0, column 1: pixel (y=3, x=14+5).
    assert pv[1, 0, 3, 5] == pytest.approx(_norm(8 * 19), abs=1e-6)
    assert pv[1, 1, 3, 5] == pytest.approx(_norm(10 * 3), abs=1e-6)
    assert pv[1, 2, 3, 5] == pytest.approx(_norm(200), abs=1e-6)
    # Patch 4 is row 1, column 0: y = 14 + r; rows past the image (y >= 20) are zero padding.
    assert pv[4, 1, 5, 0] == pytest.approx(_norm(10 * 19), abs=1e-6)
    assert np.all(pv[4, :, 6:, :] == -1.0)
    assert np.all(pv[3] == -1.0)  # columns 42..55: all padding
    # Patch 2 is row 0, columns x = 28..41: only x = 28 and 29 are in the image.
    assert np.all(pv[2, 2, :, :2] == pytest.approx(_norm(200), abs=1e-6))
    assert np.all(pv[2, :, :, 2:] == -1.0)


def test_several_images_concatenate_in_order():
    ip = Kimi_K25ImageProcessorPil(max_patches=256)
    out = ip(images=[_ramp(160, 210), _ramp(30, 20), _ramp(1280, 720)], return_tensors="pt")
    grids = out["image_grid_thw"].tolist()
    assert grids == [[1, 16, 12], [1, 2, 4], [1, 14, 22]]
    assert out["pixel_values"].shape[0] == sum(t * h * w for t, h, w in grids)
    for (_, h, w), (ih, iw) in zip(grids, [(210, 160), (20, 30), (720, 1280)], strict=True):
        assert ip.get_number_of_image_patches(ih, iw) == h * w


def test_downscale_keeps_the_picture():
    """A 2x downscale of a smooth ramp: each patch is the average of the original."""
    ip = Kimi_K25ImageProcessorPil(max_patches=4, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    out = ip(images=[_ramp(28, 28).resize((56, 56), Image.NEAREST)], return_tensors="np")
    assert out["image_grid_thw"].tolist() == [[1, 2, 2]]
    red = out["pixel_values"][0, 0, 0, :]  # first row of patch 0: x = 0..13 of the 28-wide ramp
    assert np.allclose(red, [_norm(8 * x) for x in range(14)], atol=0.04)


def test_save_and_load_round_trip(tmp_path):
    from transformers import AutoImageProcessor

    from pixelpilot.vlm.processors import _image_processor

    ip = Kimi_K25ImageProcessorPil(max_patches=300, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    ip.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["image_processor_type"] == "Kimi_K25ImageProcessor"
    assert (saved["max_patches"], saved["patch_size"], saved["merge_size"]) == (300, 14, 2)
    back = _image_processor(tmp_path, AutoImageProcessor)
    assert type(back).__name__ in ("Kimi_K25ImageProcessorPil", "Kimi_K25ImageProcessor")
    assert back.max_patches == 300 and list(back.image_mean) == [0.5] * 3


def test_rejects_unequal_side_limits():
    ip = Kimi_K25ImageProcessorPil(size={"max_height": 8, "max_width": 9})
    with pytest.raises(ValueError, match="max_height"):
        ip(images=[_ramp(30, 20)])


def _screenshot() -> Image.Image:
    from PIL import ImageDraw

    shot = Image.new("RGB", (1280, 720), "white")
    draw = ImageDraw.Draw(shot)
    for i in range(40):
        draw.rectangle([i * 30, i * 15, i * 30 + 100, i * 15 + 40], "black", (i * 6, 100, 200))
        draw.text((i * 30 + 5, i * 15 + 5), "Submit", fill="black")
    return shot


def test_close_to_torch_antialiased_bicubic():
    """The reference resizes with torchvision, which calls torch's antialiased bicubic
    interpolation on float pixels, then rounds; the same steps in torch here, against our PIL
    resize, differ by a few grey levels at a few sharp edges only (max 10 of 255)."""
    import torch
    import torch.nn.functional as F

    from pixelpilot.vlm.kimi_k25_image import patchify

    shot = _screenshot()
    ours = Kimi_K25ImageProcessorPil(max_patches=256, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    a = ours(images=[shot], return_tensors="np")["pixel_values"]
    (h, w), (ph, pw) = navit_resize(720, 1280, 14, 2, 256, 512)
    x = torch.from_numpy(np.array(shot)).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    x = F.pad(x.round().clamp(0, 255), (0, pw - w, 0, ph - h))
    b = patchify(((x / 255 - 0.5) / 0.5)[0].numpy(), 14)[0]
    assert a.shape == b.shape == (308, 3, 14, 14)
    diff = np.abs(a - b)
    assert diff.mean() < 1e-3 and diff.max() < 0.1 and (diff > 0.008).mean() < 0.01


@pytest.mark.parametrize("wh", [(160, 210), (30, 20), (1280, 720), (333, 97)])
def test_same_as_transformers_torchvision_processor(wh):
    """Runs where torchvision imports (not on the machine this project is built on)."""
    pytest.importorskip("torchvision")
    from transformers.models.kimi_k25.image_processing_kimi_k25 import Kimi_K25ImageProcessor

    kw = {"max_patches": 256, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    image = _screenshot().resize(wh)
    ours = Kimi_K25ImageProcessorPil(**kw)(images=[image], return_tensors="np")
    ref = Kimi_K25ImageProcessor(**kw)(images=[image], return_tensors="np")
    assert ours["image_grid_thw"].tolist() == ref["image_grid_thw"].tolist()
    a, b = ours["pixel_values"], np.asarray(ref["pixel_values"])
    assert a.shape == b.shape
    if navit_resize(wh[1], wh[0], 14, 2, 256, 512)[0] == (wh[1], wh[0]):
        assert np.allclose(a, b, atol=1e-5)  # no resampling: identical
    else:  # PIL's and torchvision's antialiased bicubic differ by rounding
        assert np.abs(a - b).mean() < 0.02
