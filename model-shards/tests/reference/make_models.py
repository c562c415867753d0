"""Creates small random models with Hugging Face transformers, and their outputs on fixed inputs.

Usage: make_models.py OUT_DIR

For each model NAME, writes OUT_DIR/NAME/{config.json, model.safetensors} (save_pretrained) and
OUT_DIR/NAME/reference.safetensors with the inputs (`pixel_values`, or `input_ids` and
`attention_mask`) and what transformers computes from them (`output`). The Rust fidelity test loads
the folder with model-shards and compares.
"""
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    DeiTConfig,
    DeiTForImageClassificationWithTeacher,
    ViTConfig,
    ViTForImageClassification,
    ViTModel,
)

torch.manual_seed(0)
out = Path(sys.argv[1])

vit_kwargs = dict(
    hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
    image_size=32, patch_size=8, num_channels=3, hidden_act="gelu",
    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
)
bert_kwargs = dict(
    vocab_size=120, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
    intermediate_size=128, max_position_embeddings=64, hidden_act="gelu",
)


def randomise(model):
    # Fresh models have zero biases and unit LayerNorms; perturb everything so that every
    # parameter (and any mix-up of them) shows in the outputs.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def save(name, model, inputs, output):
    d = out / name
    model.save_pretrained(d, safe_serialization=True)
    save_file({**{k: v.contiguous() for k, v in inputs.items()}, "output": output.contiguous()},
              str(d / "reference.safetensors"))


pixels = torch.randn(2, 3, 32, 32)
ids = torch.randint(1, 120, (2, 9))
mask = torch.ones(2, 9, dtype=torch.long)
mask[1, 6:] = 0
ids[1, 6:] = 0

with torch.no_grad():
    m = randomise(ViTForImageClassification(ViTConfig(**vit_kwargs, num_labels=5)))
    save("vit-classifier", m, {"pixel_values": pixels}, m(pixel_values=pixels).logits)

    m = randomise(ViTModel(ViTConfig(**vit_kwargs)))
    save("vit-model", m, {"pixel_values": pixels}, m(pixel_values=pixels).pooler_output)

    m = randomise(DeiTForImageClassificationWithTeacher(DeiTConfig(**vit_kwargs, num_labels=5)))
    save("deit-distilled", m, {"pixel_values": pixels}, m(pixel_values=pixels).logits)

    m = randomise(BertModel(BertConfig(**bert_kwargs)))
    save("bert-model", m, {"input_ids": ids, "attention_mask": mask},
         m(input_ids=ids, attention_mask=mask).pooler_output)

    m = randomise(BertForSequenceClassification(BertConfig(**bert_kwargs, num_labels=3)))
    save("bert-classifier", m, {"input_ids": ids, "attention_mask": mask},
         m(input_ids=ids, attention_mask=mask).logits)

    # Last hidden state, for the masked mean pooling check in Rust.
    m = randomise(BertModel(BertConfig(**bert_kwargs)))
    hidden = m(input_ids=ids, attention_mask=mask).last_hidden_state
    w = mask.unsqueeze(-1).float()
    pooled = (hidden * w).sum(1) / w.sum(1).clamp(min=1e-9)
    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
    save("bert-sentence", m, {"input_ids": ids, "attention_mask": mask}, pooled)
    (out / "bert-sentence" / "1_Pooling").mkdir(exist_ok=True)
    (out / "bert-sentence" / "1_Pooling" / "config.json").write_text(
        '{"word_embedding_dimension": 64, "pooling_mode_mean_tokens": true}')
    (out / "bert-sentence" / "modules.json").write_text(
        '[{"type": "sentence_transformers.models.Transformer"},'
        ' {"type": "sentence_transformers.models.Pooling"},'
        ' {"type": "sentence_transformers.models.Normalize"}]')
print("ok")
