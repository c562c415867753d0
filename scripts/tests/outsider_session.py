"""A zenoh peer session of an outsider: stock eclipse-zenoh, configured from the command line
(plain TCP, or TLS with or without a certificate of its own)."""

import json

import zenoh


def add_arguments(parser):
    parser.add_argument("--connect", action="append", default=[], help="endpoint to connect to")
    parser.add_argument("--listen", action="append", default=[], help="endpoint to listen on")
    parser.add_argument("--ca", help="root CA certificate the outsider trusts (TLS)")
    parser.add_argument("--cert", help="the outsider's own certificate (TLS)")
    parser.add_argument("--key", help="the outsider's own private key (TLS)")


def open_session(args):
    config = zenoh.Config()
    config.insert_json5("mode", json.dumps("peer"))
    config.insert_json5("connect/endpoints", json.dumps(args.connect))
    config.insert_json5("listen/endpoints", json.dumps(args.listen))
    config.insert_json5("scouting/multicast/enabled", "false")
    # Keep trying to connect rather than failing to open: a refused peer is what is measured.
    config.insert_json5("connect/exit_on_failure", "false")
    if args.ca:
        tls = "transport/link/tls/"
        config.insert_json5(tls + "root_ca_certificate", json.dumps(args.ca))
        # Every chance the outsider can give itself: no name check of the fleet's certificates.
        config.insert_json5(tls + "verify_name_on_connect", "false")
        if args.cert:
            config.insert_json5(tls + "enable_mtls", "true")
            for side in ("connect", "listen"):
                config.insert_json5(tls + side + "_certificate", json.dumps(args.cert))
                config.insert_json5(tls + side + "_private_key", json.dumps(args.key))
    return zenoh.open(config)


def peers(session):
    return len(list(session.info.peers_zid()))
