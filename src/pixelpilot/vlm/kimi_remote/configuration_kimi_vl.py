"""KimiVLConfig: a vision tower, a projector and a DeepSeek-V3 (MoE) text decoder."""

from transformers import DeepseekV3Config, PretrainedConfig


class KimiVLConfig(PretrainedConfig):
    model_type = "kimi_vl"

    def __init__(
        self,
        vision_config=None,
        text_config=None,
        media_placeholder_token_id=0,
        ignore_index=-100,
        **kwargs,
    ):
        vision = dict(vision_config or {})
        vision.setdefault("patch_size", 14)
        vision.setdefault("hidden_size", 32)
        vision.setdefault("num_hidden_layers", 2)
        vision.setdefault("num_attention_heads", 2)
        vision.setdefault("intermediate_size", 64)
        vision.setdefault("merge_kernel_size", [2, 2])
        vision.setdefault("init_pos_emb_height", 16)
        vision.setdefault("init_pos_emb_width", 16)
        self.vision_config = vision
        if isinstance(text_config, dict) or text_config is None:
            text_config = DeepseekV3Config(**(text_config or {}))
        self.text_config = text_config
        self.media_placeholder_token_id = media_placeholder_token_id
        self.ignore_index = ignore_index
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    def to_dict(self):
        out = super().to_dict()
        if hasattr(self.text_config, "to_dict"):
            out["text_config"] = self.text_config.to_dict()
        return out
