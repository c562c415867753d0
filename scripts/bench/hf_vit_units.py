"""Times a ViT checkpoint with Hugging Face transformers, unit by unit and whole.

Usage: hf_vit_units.py MODEL_DIR UBATCH THREADS WARMUP REPEATS
Prints JSON: {"units": [median seconds per unit], "whole_s": median whole-model forward}.

Units follow quantpipe's cut of a pre-LN block, calling the transformers submodules directly:
u0 = layernorm_before + q/k/v + attention kernel, u1 = o_proj + residual,
u2 = layernorm_after + fc1 + activation, u3 = fc2 + residual. The embeddings are timed
with unit 1, the final layernorm and classifier with the last unit, as quantpipe counts them.
"""
import json
import statistics
import sys
import time

import torch
from transformers import ViTForImageClassification
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.vit.modeling_vit import eager_attention_forward

model_dir, ubatch, threads, warmup, repeats = sys.argv[1], *map(int, sys.argv[2:])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = ViTForImageClassification.from_pretrained(model_dir).eval()
cfg = model.config
pixels = torch.randn(ubatch, cfg.num_channels, cfg.image_size, cfg.image_size)


def unit_fns():
    """Splits each transformers ViTLayer at quantpipe's unit boundaries.

    transformers 5 folds the attention output projection into ViTAttention, so u0 runs the
    q/k/v projections and the model's own attention kernel, and u1 its o_proj plus residual.
    """
    vit = model.vit
    attention_kernel = ALL_ATTENTION_FUNCTIONS.get_interface(
        cfg._attn_implementation, eager_attention_forward
    )
    fns = []
    for i, layer in enumerate(vit.layers):
        first = i == 0

        def u0(x, layer=layer, first=first):
            h = vit.embeddings(x) if first else x
            att = layer.attention
            n = layer.layernorm_before(h)
            heads = (*n.shape[:-1], -1, att.head_dim)
            q, k, v = (p(n).view(heads).transpose(1, 2) for p in (att.q_proj, att.k_proj, att.v_proj))
            out, _ = attention_kernel(att, q, k, v, None, dropout=0.0, scaling=att.scaling)
            return (out.reshape(*n.shape[:-1], -1).contiguous(), h)

        def u1(xs, layer=layer):
            return layer.attention.o_proj(xs[0]) + xs[1]

        def u2(h, layer=layer):
            mlp = layer.mlp
            return (mlp.activation_fn(mlp.fc1(layer.layernorm_after(h))), h)

        def u3(xs, layer=layer):
            return layer.mlp.fc2(xs[0]) + xs[1]

        fns += [u0, u1, u2, u3]
    last = fns[-1]
    fns[-1] = lambda xs: model.classifier(vit.layernorm(last(xs))[:, 0, :])
    return fns


fns = unit_fns()
times = [[] for _ in fns]
whole = []
with torch.inference_mode():
    reference = model(pixel_values=pixels).logits
    for r in range(warmup + repeats):
        x = pixels
        for i, f in enumerate(fns):
            t = time.perf_counter()
            x = f(x)
            if r >= warmup:
                times[i].append(time.perf_counter() - t)
        if r == 0:
            assert torch.allclose(x, reference, atol=1e-4), "unit split differs from the model"
        t = time.perf_counter()
        model(pixel_values=pixels)
        if r >= warmup:
            whole.append(time.perf_counter() - t)
print(json.dumps({"units": [statistics.median(t) for t in times], "whole_s": statistics.median(whole)}))
