//! Which zenoh endpoints stay on this machine: `tcp/127.0.0.1:7447`, `tls/[::1]:7447`,
//! `tcp/localhost:7447` do; `tcp/0.0.0.0:7447`, `tcp/192.168.1.5:7447` or a host name do not.

use std::net::IpAddr;

/// The protocol of `endpoint` (`tcp`, `tls`, ...).
pub fn protocol(endpoint: &str) -> &str {
    endpoint.split_once('/').map_or("", |(p, _)| p)
}

/// Whether `endpoint` (`<protocol>/<address>[?<config>][#<metadata>]`) reaches loopback only:
/// an IP loopback address or `localhost`, or a local-only transport (unix sockets, pipes).
/// Anything unparsable counts as reachable from the network.
pub fn is_loopback(endpoint: &str) -> bool {
    let Some((proto, rest)) = endpoint.split_once('/') else {
        return false;
    };
    if matches!(proto, "unixsock-stream" | "unixpipe" | "vsock") {
        return true;
    }
    let address = rest.split(['?', '#']).next().unwrap_or("");
    let Some((host, _port)) = address.rsplit_once(':') else {
        return false;
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_endpoints_are_told_from_network_ones() {
        for local in [
            "tcp/127.0.0.1:7447",
            "tls/127.0.0.2:1",
            "tcp/[::1]:7447",
            "tcp/localhost:7447",
            "tcp/127.0.0.1:7447#iface=lo",
            "unixsock-stream//tmp/zenoh.sock",
        ] {
            assert!(is_loopback(local), "{local}");
        }
        for exposed in [
            "tcp/0.0.0.0:7447",
            "tcp/[::]:7447",
            "tcp/10.0.0.2:7447",
            "udp/192.168.1.5:7447",
            "tcp/edge-box.lan:7447",
            "tcp/127.0.0.1",
            "garbage",
        ] {
            assert!(!is_loopback(exposed), "{exposed}");
        }
    }

    #[test]
    fn the_protocol_is_the_first_chunk() {
        assert_eq!(protocol("tls/127.0.0.1:1"), "tls");
        assert_eq!(protocol("nothing"), "");
    }
}
