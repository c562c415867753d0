"""Times a ViT checkpoint with Hugging Face transformers, unit by unit and whole.

Usage: hf_vit_units.py MODEL_DIR UBATCH THREADS WARMUP REPEATS
Prints JSON: {"units": [median seconds per unit], "whole_s": median whole-model forward}.

Units follow quantpipe's cut of a pre-LN block, calling the transformers submodules directly:
u0 = layernorm_before + attention.attention, u1 = attention.output + residual,
u2 = layernorm_after + intermediate, u3 = output (dense + residual). The embeddings are timed
with unit 1, the final layernorm and classifier with the last unit, as quantpipe counts them.
"""
import json
import statistics
import sys
import time

import torch
from transformers import ViTForImageClassification

model_dir, ubatch, threads, warmup, repeats = sys.argv[1], *map(int, sys.argv[2:])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = ViTForImageClassification.from_pretrained(model_dir).eval()
cfg = model.config
pixels = torch.randn(ubatch, cfg.num_channels, cfg.image_size, cfg.image_size)


def unit_fns():
    vit = model.vit
    fns = []
    for i, layer in enumerate(vit.encoder.layer):
        first = i == 0
        def u0(x, layer=layer, first=first):
            h = vit.embeddings(x) if first else x
            return (layer.attention.attention(layer.layernorm_before(h))[0], h)
        def u1(xs, layer=layer):
            return layer.attention.output(xs[0], xs[1]) + xs[1]
        def u2(h, layer=layer):
            return (layer.intermediate(layer.layernorm_after(h)), h)
        def u3(xs, layer=layer):
            return layer.output(xs[0], xs[1])
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
