"""The fleet's wire format as an outsider writes and reads it, from what crosses the network:
every message is a MessagePack array [version, fleet, body] with structs as arrays
(quantpipe-messages: envelope.rs, activation.rs, output.rs, control/plan)."""

import random
import time

import msgpack

WIRE_VERSION = 6


def envelope(fleet, body):
    return msgpack.packb([WIRE_VERSION, fleet, body], use_bin_type=True, use_single_float=True)


def open_envelope(data, fleet):
    """The body of a message of `fleet`, or None when it is not one."""
    try:
        version, found, body = msgpack.unpackb(bytes(data), raw=False, strict_map_key=False)
    except Exception:
        return None
    if version != WIRE_VERSION or found != fleet:
        return None
    return body


def tokens_activation(fleet, client, run, seq, epoch, stage, rows):
    """A microbatch of token ids into stage `stage`: [run, client, seq, epoch, stage,
    sent_unix_ns, {"Tokens": [shape, ids]}, body_len, mask]."""
    batch, length = len(rows), len(rows[0])
    ids = [t for row in rows for t in row]
    mask = [[batch, length], bytes([1] * (batch * length))]
    header = [run, client, seq, epoch, stage, time.time_ns(), {"Tokens": [[batch, length], ids]}, 0, mask]
    return envelope(fleet, header)


def read_activation(data, fleet):
    """(run, client, seq, epoch, stage, items) of an activation message's header; None if it is
    none. The body's bytes after the header are not read."""
    try:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        unpacker.feed(bytes(data))
        version, found, header = unpacker.unpack()
    except Exception:
        return None
    if version != WIRE_VERSION or found != fleet or not isinstance(header, list) or len(header) < 5:
        return None
    mask = header[8] if len(header) > 8 else None
    items = mask[0][0] if isinstance(mask, list) and mask and isinstance(mask[0], list) else 1
    return tuple(header[:5]) + (items,)


def output(fleet, run, seq, epoch, shape, values, error=None):
    """What the last stage sends a client: [run, seq, epoch, shape, values, error, retryable]."""
    return envelope(fleet, [run, seq, epoch, shape, values, error, False])


def read_output(data, fleet):
    """dict of an output message, None if it is none."""
    body = open_envelope(data, fleet)
    # `retryable` (the seventh field) is absent from older nodes' results.
    if not isinstance(body, list) or len(body) not in (6, 7):
        return None
    run, seq, epoch, shape, values, error = body[:6]
    return {"run": run, "seq": seq, "epoch": epoch, "shape": shape, "values": values, "error": error}


def plan_epoch(data, fleet):
    """The epoch of a PlanInfo message ([epoch, model, ubatch, ...]), None if it is none."""
    body = open_envelope(data, fleet)
    if isinstance(body, list) and body and isinstance(body[0], int):
        return body[0]
    return None


def random_run():
    return random.getrandbits(63)
