"""The `openai` package's embeddings client against a quantpipe gateway.

Usage: openai_embeddings.py BASE_URL MODEL TEXTS_FILE EXPECTED_JSON

Asks for the embeddings of every line of TEXTS_FILE, once in one request (the client's default
base64 encoding) and once one text per request from several threads at a time (floats), and
checks each against EXPECTED_JSON (single-process inference: a JSON array of rows) within 1e-5.
"""

import json
import sys
from concurrent.futures import ThreadPoolExecutor

from openai import OpenAI

TOLERANCE = 1e-5


def worst_difference(got, want):
    assert len(got) == len(want), f"{len(got)} values, {len(want)} expected"
    return max(abs(a - b) for a, b in zip(got, want))


def main():
    base_url, model, texts_file, expected_file = sys.argv[1:5]
    texts = open(texts_file, encoding="utf-8").read().splitlines()
    expected = json.load(open(expected_file))
    client = OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)

    listed = [m.id for m in client.models.list()]
    assert model in listed, f"{model} not in {listed}"

    together = client.embeddings.create(model=model, input=texts)
    assert [d.index for d in together.data] == list(range(len(texts)))
    assert together.usage.prompt_tokens >= len(texts), together.usage
    worst = max(worst_difference(d.embedding, e) for d, e in zip(together.data, expected))
    assert worst <= TOLERANCE, f"one request: differs by {worst}"

    def one(text):
        r = client.embeddings.create(model=model, input=text, encoding_format="float")
        return r.data[0].embedding

    with ThreadPoolExecutor(max_workers=len(texts)) as pool:
        singles = list(pool.map(one, texts))
    worst_single = max(worst_difference(s, e) for s, e in zip(singles, expected))
    assert worst_single <= TOLERANCE, f"concurrent requests: differ by {worst_single}"

    print(json.dumps({"items": len(texts), "max_abs_diff": max(worst, worst_single)}))


if __name__ == "__main__":
    main()
