"""A PIL/numpy image processor for the ``kimi_k25`` family (no torchvision needed).

transformers' own ``Kimi_K25ImageProcessor`` is a torchvision backend, and torchvision has no
working CPU build on the machines this project is tested on. ``Kimi_K25ImageProcessorPil``
produces the same model inputs with PIL and numpy:

1. ``navit_resize``: the image keeps its own resolution unless it has more than
   ``max_patches`` patches of ``patch_size`` pixels (or more than ``size["max_height"]``
   patches on a side); then both sides shrink by one factor, never grow, truncated to ints.
2. The resized image is padded with zeros at the bottom and right to a multiple of
   ``patch_size * merge_size`` (28): padding, not stretching, so image content keeps its
   aspect ratio and (0, 0) stays the top-left corner.
3. Pixels are rescaled to 0..1 and normalised with ``image_mean``/``image_std`` (the padding
   is normalised too, as in the reference).
4. The image is cut into ``patch_size`` x ``patch_size`` patches in row-major order:
   ``pixel_values`` is ``[patches, 3, 14, 14]`` for all images of a call, concatenated;
   ``image_grid_thw`` is ``[images, 3]`` rows of ``(1, rows, cols)``. The model merges
   ``merge_size`` x ``merge_size`` patches into one token, so an image takes
   ``rows * cols / merge_size**2`` placeholder tokens.

Saved configs name ``Kimi_K25ImageProcessor`` (``PilBackend.to_dict`` drops the ``Pil``
suffix), so a machine with torchvision loads transformers' own class from the same folder;
``pixelpilot.vlm.processors`` picks this class where torchvision is missing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from transformers.image_processing_backends import PilBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import (
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    PILImageResampling,
    SizeDict,
)
from transformers.processing_utils import ImagesKwargs


class KimiK25ImagesKwargs(ImagesKwargs, total=False):
    """``max_patches``: patch budget of one image; ``patch_size``: pixels per patch side;
    ``merge_size``: patches per merged token side."""

    max_patches: int
    patch_size: int
    merge_size: int


def navit_resize(
    height: int, width: int, patch_size: int, merge_size: int, max_patches: int, max_side: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((resized_h, resized_w), (padded_h, padded_w))`` of an image of ``height x width``.

    The scale is the most restrictive of: 1 (never upscale), the total patch budget
    (``sqrt(max_patches / patches)``) and the per-side budget (``max_side`` patches).
    """
    rows = max(1.0, height // patch_size)
    cols = max(1.0, width // patch_size)
    side = max_side * patch_size
    scale = min(1.0, math.sqrt(max_patches / (rows * cols)), side / height, side / width)
    new_h = min(max(1, int(height * scale)), side)
    new_w = min(max(1, int(width * scale)), side)
    unit = merge_size * patch_size
    return (new_h, new_w), (-(-new_h // unit) * unit, -(-new_w // unit) * unit)


class Kimi_K25ImageProcessorPil(PilBackend):  # noqa: N801 (transformers' class name + Pil)
    do_resize = True
    resample = PILImageResampling.BICUBIC
    size = {"max_height": 512, "max_width": 512}
    max_patches = 16384
    do_rescale = True
    do_normalize = True
    image_mean = IMAGENET_STANDARD_MEAN
    image_std = IMAGENET_STANDARD_STD
    do_convert_rgb = True
    patch_size = 14
    merge_size = 2
    valid_kwargs = KimiK25ImagesKwargs
    model_input_names = ["pixel_values", "image_grid_thw"]

    def _validate_preprocess_kwargs(self, size: SizeDict | None = None, **kwargs: Any) -> None:
        if size is not None and (size.max_height is None or size.max_height != size.max_width):
            raise ValueError(f"size needs equal 'max_height' and 'max_width', got {size}")
        super()._validate_preprocess_kwargs(size=size, **kwargs)

    def _preprocess(
        self,
        images: list[np.ndarray],
        do_resize: bool,
        size: SizeDict,
        resample: Any,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean: Any,
        image_std: Any,
        patch_size: int,
        merge_size: int,
        max_patches: int,
        return_tensors: Any = None,
        **kwargs: Any,
    ) -> BatchFeature:
        patches, grids = [], []
        for image in images:  # channels-first arrays (3, H, W), uint8 from PIL
            if do_resize:
                (h, w), (ph, pw) = navit_resize(
                    image.shape[1], image.shape[2], patch_size, merge_size, max_patches,
                    size.max_height,
                )  # fmt: skip
                if (h, w) != image.shape[1:]:  # most screenshots keep their size
                    image = self.resize(image, SizeDict(height=h, width=w), resample=resample)
                image = self.pad([image], pad_size=SizeDict(height=ph, width=pw))[0]
            if do_rescale:
                image = self.rescale(image, rescale_factor)
            if do_normalize:
                image = self.normalize(image, image_mean, image_std)
            flat, rows, cols = patchify(image.astype(np.float32), patch_size)
            patches.append(flat)
            grids.append([1, rows, cols])
        data = {"pixel_values": np.concatenate(patches), "image_grid_thw": np.array(grids)}
        return BatchFeature(data=data, tensor_type=return_tensors)

    def get_number_of_image_patches(
        self, height: int, width: int, images_kwargs: dict | None = None
    ) -> int:
        """Patches (before merging) of an image of ``height x width``."""
        kw = images_kwargs or {}
        max_side = kw["size"]["max_height"] if "size" in kw else self.size["max_height"]
        patch = kw.get("patch_size", self.patch_size)
        _, (ph, pw) = navit_resize(
            height, width, patch, kw.get("merge_size", self.merge_size),
            kw.get("max_patches", self.max_patches), max_side,
        )  # fmt: skip
        return (ph // patch) * (pw // patch)


def patchify(image: np.ndarray, patch: int) -> tuple[np.ndarray, int, int]:
    """``(C, H, W)`` -> ``([rows*cols, C, patch, patch], rows, cols)``, row-major patches."""
    c, h, w = image.shape
    rows, cols = h // patch, w // patch
    grid = image.reshape(c, rows, patch, cols, patch).transpose(1, 3, 0, 2, 4)
    return np.ascontiguousarray(grid.reshape(rows * cols, c, patch, patch)), rows, cols
