"""KimiVLForConditionalGeneration: native-resolution ViT + patch merger + MoE decoder."""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DeepseekV3ForCausalLM, GenerationMixin, PreTrainedModel

from .configuration_kimi_vl import KimiVLConfig


class VisionBlock(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x, mask):
        n, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, 3, self.heads, dim // self.heads).unbind(1)
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(att.transpose(0, 1).reshape(n, dim))
        return x + self.mlp(self.norm2(x))


class NativeResolutionViT(nn.Module):
    """Patches of any image size; a learned 2-D position table, interpolated per image;
    attention stays within each image (block-diagonal mask)."""

    def __init__(self, cfg):
        super().__init__()
        dim, p = cfg["hidden_size"], cfg["patch_size"]
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=p, stride=p)
        self.pos_emb = nn.Parameter(
            torch.randn(cfg["init_pos_emb_height"], cfg["init_pos_emb_width"], dim) * 0.02
        )
        self.blocks = nn.ModuleList(
            VisionBlock(dim, cfg["num_attention_heads"], cfg["intermediate_size"])
            for _ in range(cfg["num_hidden_layers"])
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, pixel_values, grid_hws):
        x = self.patch_embed(pixel_values).flatten(1)  # [patches, dim]
        pos, ids = [], []
        for i, (h, w) in enumerate(grid_hws.tolist()):
            table = self.pos_emb.permute(2, 0, 1).unsqueeze(0)
            table = F.interpolate(table, size=(h, w), mode="bicubic", align_corners=False)
            pos.append(table[0].flatten(1).T)
            ids.append(torch.full((h * w,), i, device=x.device))
        x = x + torch.cat(pos)
        ids = torch.cat(ids)
        mask = ids[:, None] == ids[None, :]
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)


class Projector(nn.Module):
    """2x2 patch merge, then an MLP to the decoder's width."""

    def __init__(self, cfg, text_hidden):
        super().__init__()
        kh, kw = cfg["merge_kernel_size"]
        merged = cfg["hidden_size"] * kh * kw
        self.kernel = (kh, kw)
        self.norm = nn.LayerNorm(merged)
        self.mlp = nn.Sequential(
            nn.Linear(merged, merged), nn.GELU(), nn.Linear(merged, text_hidden)
        )

    def forward(self, x, grid_hws):
        kh, kw = self.kernel
        out, start = [], 0
        for h, w in grid_hws.tolist():
            img = x[start : start + h * w].view(h // kh, kh, w // kw, kw, -1)
            out.append(img.permute(0, 2, 1, 3, 4).reshape((h // kh) * (w // kw), -1))
            start += h * w
        return self.mlp(self.norm(torch.cat(out)))


class KimiVLPreTrainedModel(PreTrainedModel):
    config_class = KimiVLConfig
    base_model_prefix = "model"
    _supports_sdpa = True
    _no_split_modules = ["VisionBlock"]


class KimiVLForConditionalGeneration(KimiVLPreTrainedModel, GenerationMixin):
    def __init__(self, config):
        super().__init__(config)
        self.vision_tower = NativeResolutionViT(config.vision_config)
        self.multi_modal_projector = Projector(config.vision_config, config.text_config.hidden_size)
        self.language_model = DeepseekV3ForCausalLM(config.text_config)
        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def image_features(self, pixel_values, image_grid_hws):
        feats = self.vision_tower(pixel_values.to(self.dtype), image_grid_hws)
        return self.multi_modal_projector(feats, image_grid_hws)

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        pixel_values=None,
        image_grid_hws=None,
        labels=None,
        use_cache=None,
        logits_to_keep=0,
        **kwargs,
    ):
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        if pixel_values is not None and input_ids is not None:
            feats = self.image_features(pixel_values, image_grid_hws)
            slots = (input_ids == self.config.media_placeholder_token_id).unsqueeze(-1)
            if int(slots.sum()) != feats.numel() // feats.shape[-1]:
                raise ValueError("media placeholder count does not match the image features")
            inputs_embeds = inputs_embeds.masked_scatter(slots, feats.to(inputs_embeds.dtype))
        if past_key_values is not None:
            kwargs["past_key_values"] = past_key_values
        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )
