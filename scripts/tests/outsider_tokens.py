"""A client of the fleet written with nothing of quantpipe (stock eclipse-zenoh and msgpack)
that sends stage 0 a microbatch of token ids outside the model's vocabulary, then a valid one.

It asks the leader's plan for the epoch, listens on its own results key, and expects an error
result for the out-of-range microbatch and embeddings for the valid one that follows. Prints a
JSON report; exits non-zero when either answer is not what it expects.
"""

import argparse
import json
import queue
import sys
import time

import zenoh

import outsider_session
import outsider_wire as wire

VALID_ROW = [101, 7592, 2088, 102]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    outsider_session.add_arguments(p)
    p.add_argument("--fleet", required=True)
    p.add_argument("--name", required=True, help="the client name (its certificate's)")
    p.add_argument("--bad-id", type=int, default=1_000_000, help="a token id outside the vocabulary")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds for the plan and for each answer")
    args = p.parse_args()
    fleet = args.fleet
    prefix = f"qp/{fleet}"
    session = outsider_session.open_session(args)

    epoch = None
    deadline = time.monotonic() + args.timeout
    while epoch is None and time.monotonic() < deadline:
        for reply in session.get(f"{prefix}/plan", timeout=2.0):
            if reply.ok is not None:
                epoch = wire.plan_epoch(reply.ok.payload.to_bytes(), fleet)
        if epoch is None:
            time.sleep(0.5)
    if epoch is None:
        sys.exit(f"no plan of fleet {fleet} within {args.timeout} s")

    results = queue.Queue()
    sub = session.declare_subscriber(
        f"{prefix}/result/{args.name}", lambda s: results.put(wire.read_output(s.payload.to_bytes(), fleet))
    )
    # A client's microbatches go to stage 0 on its own key.
    pub = session.declare_publisher(f"{prefix}/stage/0/in/{args.name}", congestion_control=zenoh.CongestionControl.BLOCK)
    while not pub.matching_status and time.monotonic() < deadline:
        time.sleep(0.05)
    run = wire.random_run()

    def ask(seq, rows):
        pub.put(wire.tokens_activation(fleet, args.name, run, seq, epoch, 0, rows))
        end = time.monotonic() + args.timeout
        while time.monotonic() < end:
            try:
                out = results.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                break
            if out is not None and out["run"] == run and out["seq"] == seq:
                return out
        return None

    bad = ask(0, [[101, args.bad_id, 102], [101, -5, 102]])
    good = ask(1, [VALID_ROW, VALID_ROW])
    sub.undeclare()
    pub.undeclare()
    session.close()
    report = {
        "epoch": epoch,
        "bad": None if bad is None else {"error": bad["error"], "values": len(bad["values"])},
        "good": None if good is None else {"error": good["error"], "shape": good["shape"], "values": len(good["values"])},
    }
    json.dump(report, sys.stdout)
    print()
    ok = bad is not None and bad["error"] and not bad["values"] and good is not None and good["error"] is None and good["values"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
