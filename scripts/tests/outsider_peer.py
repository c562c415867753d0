"""An outsider on the fleet's network, written with nothing of quantpipe: stock eclipse-zenoh
and msgpack. For `--seconds` (or until `--stop-file` appears) it

- listens: subscribes to every key of the fleet (`**`, `qp/<fleet>/**`, each stage's input and
  acknowledgements, the plan announcements, each `--victim`'s results), to its liveliness tokens,
  and asks the plan, stats and device queryables, counting every byte that reaches it;
- publishes: well-formed token microbatches of the fleet in the first victim's name into every
  stage's input (stage 0's: on the victim's key and on its own), and results
  forged for each `--victim` (with the run id, sequence number and epoch of every microbatch it
  saw entering stage 0, else made up);

It prints one JSON report on stdout: peers it was linked to, bytes and samples received by
subscription, by liveliness and by query, and what it published.
"""

import argparse
import json
import os
import random
import sys
import threading
import time

import zenoh

import outsider_session
import outsider_wire as wire

# MiniLM's [CLS] ... [SEP]: ids inside any BERT vocabulary.
VALID_ROW = [101, 7592, 2088, 102]


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.by = {}

    def add(self, name, nbytes):
        with self.lock:
            c = self.by.setdefault(name, {"samples": 0, "bytes": 0})
            c["samples"] += 1
            c["bytes"] += nbytes

    def bump(self, name, n=1):
        with self.lock:
            c = self.by.setdefault(name, {"samples": 0, "bytes": 0})
            c["samples"] += n

    def snapshot(self):
        with self.lock:
            return json.loads(json.dumps(self.by))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    outsider_session.add_arguments(p)
    p.add_argument("--fleet", required=True)
    p.add_argument("--name", required=True, help="the client name it sends as")
    p.add_argument("--stages", type=int, default=3, help="stage inputs to publish into")
    p.add_argument("--victim", action="append", default=[], help="a client whose results it forges and reads")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--stop-file", help="stop early once this file exists")
    p.add_argument("--ready-file", help="written once every subscriber is declared")
    p.add_argument("--quiet", action="store_true", help="listen only, publish nothing")
    p.add_argument(
        "--skip-stage0", action="store_true", help="put nothing into stage 0 (where an enrolled client may put)"
    )
    args = p.parse_args()

    fleet = args.fleet
    prefix = f"qp/{fleet}"
    received = Counts()
    liveliness = Counts()
    replies = Counts()
    sent = Counts()
    seen = []  # (run, client, seq, epoch, items) of microbatches seen entering stage 0
    seen_lock = threading.Lock()
    session = outsider_session.open_session(args)

    def put(key, message):
        # Only to other peers: what it sends itself is not what it read.
        session.put(key, message, allowed_destination=zenoh.Locality.REMOTE)
        sent.bump(key)

    def forge(run, client, seq, epoch, items=1):
        # A result for a microbatch: its ids, wrong values (MiniLM's 384-wide embeddings).
        values = [0.5] * (items * 384)
        put(f"{prefix}/result/{client}", wire.output(fleet, run, seq, epoch, [items, 384], values))

    def on_sample(label):
        def callback(sample):
            data = sample.payload.to_bytes()
            received.add(label, len(data))
            if not args.quiet and label == f"{prefix}/stage/0/in/*":
                header = wire.read_activation(data, fleet)
                if header is not None:
                    run, client, seq, epoch, _stage, items = header
                    with seen_lock:
                        seen.append((run, client, seq, epoch, items))
                    # The moment a microbatch enters stage 0, its result, forged.
                    forge(run, client, seq, epoch, items)

        return callback

    # Stage 0 takes each client's microbatches on that client's key, below stage/0/in.
    subscriptions = ["**", "qp/**", f"{prefix}/**", f"{prefix}/plan/changed", f"{prefix}/stage/0/in/*"]
    for k in range(args.stages):
        subscriptions += [f"{prefix}/stage/{k}/in", f"{prefix}/stage/{k}/ack"]
    subscriptions += [f"{prefix}/result/{v}" for v in args.victim]
    subscribers = [
        session.declare_subscriber(key, on_sample(key), allowed_origin=zenoh.Locality.REMOTE) for key in subscriptions
    ]
    live = session.liveliness().declare_subscriber(
        f"{prefix}/**", lambda s: liveliness.add(str(s.key_expr), 0), history=True
    )
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("ready\n")

    epoch = None
    max_peers = 0
    rounds = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and not (args.stop_file and os.path.exists(args.stop_file)):
        rounds += 1
        max_peers = max(max_peers, outsider_session.peers(session))
        # Ask what a fleet member may ask.
        for selector in [f"{prefix}/plan", f"{prefix}/stats/*", f"{prefix}/device/*"]:
            for reply in session.get(selector, timeout=1.0):
                if reply.ok is not None:
                    data = reply.ok.payload.to_bytes()
                    replies.add(selector, len(data))
                    if selector.endswith("/plan"):
                        epoch = wire.plan_epoch(data, fleet) or epoch
        for reply in session.liveliness().get(f"{prefix}/**", timeout=1.0):
            if reply.ok is not None:
                liveliness.add("get:" + str(reply.ok.key_expr), 0)
        if not args.quiet:
            # Well-formed work for every stage, at the plan's epoch when it could learn it, in
            # the name of the first victim (its results would go there).
            # Stage 0: on the victim's own key, and on its own key; later stages: their input.
            as_client = args.victim[0] if args.victim else args.name
            keys = [] if args.skip_stage0 else [f"{prefix}/stage/0/in/{as_client}", f"{prefix}/stage/0/in/{args.name}"]
            keys += [f"{prefix}/stage/{k}/in" for k in range(1, args.stages)]
            for key in keys:
                for e in [epoch] if epoch is not None else [1, 2, 3]:
                    stage = 0 if "/stage/0/" in key else int(key.split("/")[-2])
                    message = wire.tokens_activation(fleet, as_client, wire.random_run(), 0, e, stage, [VALID_ROW])
                    put(key, message)
            for v in args.victim:
                with seen_lock:
                    mine = [s for s in seen if s[1] == v][-4:]
                ids = [(run, seq, e, items) for run, _c, seq, e, items in mine] or [
                    (wire.random_run(), random.randrange(8), epoch or 1, 4)
                ]
                for run, seq, e, items in ids:
                    forge(run, v, seq, e, items)
        time.sleep(0.25)

    report = {
        "name": args.name,
        "rounds": rounds,
        "max_peers": max_peers,
        "received": received.snapshot(),
        "received_bytes": sum(c["bytes"] for c in received.snapshot().values()),
        "liveliness": liveliness.snapshot(),
        "replies": replies.snapshot(),
        "reply_bytes": sum(c["bytes"] for c in replies.snapshot().values()),
        "sent": sent.snapshot(),
        "microbatches_seen": len(seen),
        "plan_epoch": epoch,
    }
    for s in subscribers:
        s.undeclare()
    live.undeclare()
    session.close()
    json.dump(report, sys.stdout)
    print()


if __name__ == "__main__":
    main()
