"""KimiVLImageProcessor: native resolution, bounded by a token budget."""

import math

import numpy as np
import torch
from transformers.image_processing_utils import BatchFeature, ImageProcessingMixin
from transformers.processing_utils import ImagesKwargs


class KimiVLImagesKwargs(ImagesKwargs, total=False):
    """The keyword arguments this processor takes (transformers 5.25 loads a processor's
    saved settings through ``valid_kwargs``)."""

    patch_size: int
    merge_kernel_size: list[int]
    in_token_limit: int


class KimiVLImageProcessor(ImageProcessingMixin):
    model_input_names = ["pixel_values", "image_grid_hws"]
    valid_kwargs = KimiVLImagesKwargs

    def __init__(
        self,
        patch_size=14,
        merge_kernel_size=(2, 2),
        in_token_limit=16384,
        image_mean=(0.5, 0.5, 0.5),
        image_std=(0.5, 0.5, 0.5),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.patch_size = patch_size
        self.merge_kernel_size = list(merge_kernel_size)
        self.in_token_limit = in_token_limit
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)

    def target_size(self, width, height):
        """(width, height) to resize to: multiples of patch*merge, at most in_token_limit
        merged tokens."""
        unit = self.patch_size * self.merge_kernel_size[0]
        tokens = (width / unit) * (height / unit)
        scale = min(1.0, math.sqrt(self.in_token_limit / tokens)) if tokens else 1.0
        w = max(unit, int(width * scale // unit) * unit)
        h = max(unit, int(height * scale // unit) * unit)
        return w, h

    def __call__(self, images, return_tensors=None, **kwargs):
        p = self.patch_size
        patches, grids = [], []
        mean = np.array(self.image_mean, dtype=np.float32)
        std = np.array(self.image_std, dtype=np.float32)
        for image in images:
            w, h = self.target_size(*image.size)
            arr = np.asarray(image.convert("RGB").resize((w, h)), dtype=np.float32) / 255.0
            arr = ((arr - mean) / std).transpose(2, 0, 1)  # C, H, W
            t = torch.from_numpy(arr).view(3, h // p, p, w // p, p).permute(1, 3, 0, 2, 4)
            patches.append(t.reshape(-1, 3, p, p))
            grids.append([h // p, w // p])
        data = {"pixel_values": torch.cat(patches), "image_grid_hws": torch.tensor(grids)}
        return BatchFeature(data=data, tensor_type=return_tensors)
