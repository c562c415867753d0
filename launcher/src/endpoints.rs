//! zenoh endpoints of fleets on this host.

/// `n` distinct loopback TCP ports that were free a moment ago.
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// The zenoh endpoint of loopback TCP `port`.
pub fn loopback(port: u16) -> String {
    format!("tcp/127.0.0.1:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_loopback_endpoints_name_them() {
        let p = free_ports(3).unwrap();
        assert!(p[0] != p[1] && p[1] != p[2] && p[0] != p[2]);
        assert_eq!(loopback(7447), "tcp/127.0.0.1:7447");
    }
}
