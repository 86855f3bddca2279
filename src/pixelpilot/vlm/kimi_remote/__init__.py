"""Remote code of the tiny Kimi-VL checkpoints, copied into each checkpoint folder.

It follows the interface of moonshotai's Kimi-VL remote code (``KimiVLConfig``,
``KimiVLForConditionalGeneration`` loaded with ``AutoModelForCausalLM`` and
``trust_remote_code=True``; ``KimiVLProcessor`` giving ``pixel_values`` and
``image_grid_hws``; the ``<|media_pad|>`` placeholder), written here from that interface: a
native-resolution ViT (MoonViT-like), a 2x2 patch merger with an MLP projector and a
DeepSeek-V3 mixture-of-experts decoder. It is not Moonshot's code.
"""
