"""`prometheus_client`'s parser over a quantpipe gateway's /metrics.

Usage: prometheus_metrics.py BASE_URL STAGES

Scrapes twice around a request (per-stage rates need two scrapes) and checks that the plan
(stages, units, bitwidth per link), per-stage items/s and busy share, per-link bandwidth and
bitwidth, the queue depth, microbatch fill, and requests with a latency histogram by status are
all there. The exposition also parses with the strict OpenMetrics parser.
"""

import json
import sys
import threading
import time
import urllib.request

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families


def scrape(base_url):
    with urllib.request.urlopen(f"{base_url}/metrics") as r:
        return r.read().decode()


def samples(text):
    """Every sample by name, from the Prometheus text parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def embed(base_url):
    body = json.dumps({"model": sys.argv[3] if len(sys.argv) > 3 else "minilm", "input": "a scrape apart"})
    req = urllib.request.Request(
        f"{base_url}/v1/embeddings", body.encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req) as r:
        assert r.status == 200


def scrape_under_load(base_url):
    """A scrape taken while requests keep the links busy (bandwidth is measured over the
    links' last window)."""
    done = threading.Event()

    def load():
        while not done.is_set():
            embed(base_url)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(1.5)
        return scrape(base_url)
    finally:
        done.set()
        worker.join()


def main():
    base_url, stages = sys.argv[1], int(sys.argv[2])
    scrape(base_url)
    embed(base_url)
    text = scrape_under_load(base_url)
    list(openmetrics_families(text))  # raises on anything that is not valid OpenMetrics
    s = samples(text)

    units = s["quantpipe_plan_stage_units"]
    assert len(units) == stages, units
    assert sum(u.value for u in units) == 24, units
    assert len(s["quantpipe_plan_link_bits"]) == stages - 1
    assert all(b.value == 32 for b in s["quantpipe_plan_link_bits"])
    assert len(s["quantpipe_stage_items_per_second"]) == stages, s.get("quantpipe_stage_items_per_second")
    assert len(s["quantpipe_stage_busy_ratio"]) == stages
    assert all(0 <= b.value <= 1 for b in s["quantpipe_stage_busy_ratio"])
    assert any(b.value > 0 for b in s["quantpipe_link_bandwidth_mbps"]), s["quantpipe_link_bandwidth_mbps"]
    assert len(s["quantpipe_link_bits"]) == stages - 1
    assert all(b.value in (0, 32) for b in s["quantpipe_link_bits"]), s["quantpipe_link_bits"]
    assert s["quantpipe_queue_items"][0].value >= 0
    assert 0 < s["quantpipe_microbatch_fill_ratio"][0].value <= 1
    ok = [
        r
        for r in s["quantpipe_gateway_requests_total"]
        if r.labels == {"api": "embeddings", "status": "200"}
    ]
    assert ok and ok[0].value >= 1, s["quantpipe_gateway_requests_total"]
    buckets = [
        b
        for b in s["quantpipe_gateway_request_duration_seconds_bucket"]
        if b.labels["api"] == "embeddings" and b.labels["status"] == "200"
    ]
    assert buckets and buckets[-1].labels["le"] == "+Inf" and buckets[-1].value >= 1, buckets
    print(json.dumps({"families": len(s)}))


if __name__ == "__main__":
    main()
