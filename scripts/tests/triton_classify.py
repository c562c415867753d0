"""`tritonclient.http` (Open Inference Protocol) classifying images through a quantpipe gateway.

Usage: triton_classify.py URL MODEL IMAGES_DIR EXPECTED_JSON

Sends every PNG of IMAGES_DIR (name order) as BYTES, several per request, asks for the top class
with Triton's classification extension (InferRequestedOutput(..., class_count=1)), and checks
each label index against EXPECTED_JSON (single-process inference's labels); then checks the
logits output and an undecodable image's 400.
"""

import json
import os
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

PER_REQUEST = 8


def text(element):
    return element.decode() if isinstance(element, bytes) else element


def main():
    url, model, images_dir, expected_file = sys.argv[1:5]
    expected = json.load(open(expected_file))
    names = sorted(n for n in os.listdir(images_dir) if n.endswith(".png"))
    images = [open(os.path.join(images_dir, n), "rb").read() for n in names]
    client = httpclient.InferenceServerClient(url)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(model)
    metadata = client.get_model_metadata(model)
    assert metadata["name"] == model, metadata

    labels = []
    for first in range(0, len(images), PER_REQUEST):
        batch = images[first : first + PER_REQUEST]
        data = np.array(batch, dtype=np.object_)
        inp = httpclient.InferInput("image", [len(batch)], "BYTES")
        inp.set_data_from_numpy(data)
        out = httpclient.InferRequestedOutput("logits", class_count=1)
        result = client.infer(model, [inp], outputs=[out])
        top = result.as_numpy("logits").reshape(len(batch), 1)
        # Each entry is "score:index:label" (str from the JSON form, bytes from binary).
        labels += [int(text(t[0]).split(":")[1]) for t in top]
    assert labels == expected, f"labels {labels} != single-process {expected}"

    inp = httpclient.InferInput("image", [1], "BYTES")
    inp.set_data_from_numpy(np.array([images[0]], dtype=np.object_))
    result = client.infer(model, [inp], outputs=[httpclient.InferRequestedOutput("logits")])
    logits = result.as_numpy("logits")
    assert logits.shape == (1, 10) and int(np.argmax(logits[0])) == expected[0], logits

    bad = httpclient.InferInput("image", [1], "BYTES")
    bad.set_data_from_numpy(np.array([b"not an image"], dtype=np.object_))
    try:
        client.infer(model, [bad])
        raise AssertionError("an undecodable image was accepted")
    except InferenceServerException as e:
        assert e.status() == "400", (e.status(), e.message())
    print(json.dumps({"images": len(labels)}))


if __name__ == "__main__":
    main()
