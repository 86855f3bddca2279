"""KimiVLProcessor: chat template, media placeholder expansion, tokenization."""

from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin


class KimiVLProcessor(ProcessorMixin):
    attributes = ["image_processor", "tokenizer"]

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = "<|media_pad|>"
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    def __call__(self, images=None, text=None, padding=False, return_tensors=None, **kwargs):
        texts = [text] if isinstance(text, str) else list(text)
        image_inputs = {}
        if images:
            image_inputs = self.image_processor(images, return_tensors="pt")
            kh, kw = self.image_processor.merge_kernel_size
            counts = [int(h * w) // (kh * kw) for h, w in image_inputs["image_grid_hws"].tolist()]
            it = iter(counts)
            expanded = []
            for t in texts:
                parts = t.split(self.image_token)
                out = parts[0]
                for rest in parts[1:]:
                    out += self.image_token * next(it) + rest
                expanded.append(out)
            texts = expanded
        enc = self.tokenizer(texts, padding=padding, return_tensors=return_tensors)
        return BatchFeature(data={**enc, **image_inputs}, tensor_type=return_tensors)

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)
