//! Network namespaces for multi-node fleets (tests, `quantpipe bench adaptive`): hosts with their own network stack, joined by veth
//! links through a bridge, with links shaped by `tc tbf`.
//!
//! Topology (a star): a hub namespace holds a bridge; each member namespace `i` has one veth
//! `eth0` with address `10.213.0.(i+1)/24` whose peer `v<i>` sits on the hub's bridge. Every
//! address exists only inside these namespaces; nothing is created in the caller's namespace
//! (veths are created in the hub with their peer placed straight into the member).
//!
//! A [`Link`] is one direction of a member's veth: [`Link::egress`] is what the member sends
//! (shaped on its `eth0`), [`Link::ingress`] what it receives (shaped on the hub's `v<i>`).
//! [`Netns::set_rate`] installs or replaces a `tbf` qdisc there, so a rate can change while
//! traffic flows (bandwidth traces).
//!
//! Names are `<prefix>-<pid>-<k>-<role>`: unique per process and per harness. Everything is
//! deleted on drop (a test that panics unwinds through the drop), and [`Netns::new`] first
//! deletes namespaces with the same prefix left by processes that no longer exist (a run killed
//! before it could clean up).
//!
//! [`Netns::fault`] cuts a member off silently ([`LinkFault`]: its veth down at the hub, or
//! every packet dropped), [`Netns::heal`] mends it: chaos tests of vanished devices.
//!
//! Needs root or CAP_NET_ADMIN (and CAP_SYS_ADMIN for `ip netns exec`); without them creation
//! fails with an error that says so (tests check first: [`crate::privilege`]).

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Harnesses created by this process so far (part of the names, so that tests of one process
/// running in parallel never collide).
static HARNESSES: AtomicUsize = AtomicUsize::new(0);

/// Which way a link carries traffic, seen from its member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// What the member sends.
    Egress,
    /// What the member receives.
    Ingress,
}

/// One direction of a member's connection to the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub member: usize,
    pub direction: Direction,
}

impl Link {
    /// Everything member `i` sends.
    pub fn egress(member: usize) -> Link {
        Link {
            member,
            direction: Direction::Egress,
        }
    }
    /// Everything member `i` receives.
    pub fn ingress(member: usize) -> Link {
        Link {
            member,
            direction: Direction::Ingress,
        }
    }
}

/// A silent fault of a member's link: nothing is closed, no peer is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFault {
    /// The member's veth is down on the hub's side: its carrier is lost (a pulled cable, a
    /// device out of radio range).
    Down,
    /// Every packet to and from the member is dropped (loss 100%), the link stays up.
    Loss,
}

/// What a failed harness operation was and why.
#[derive(Debug)]
pub enum NetnsError {
    /// `ip netns add` was refused: not root.
    NotPermitted { command: String, stderr: String },
    /// Any other failing command.
    Command { command: String, stderr: String },
    /// Bad arguments (member index, rate).
    Invalid(String),
}

impl std::error::Error for NetnsError {}

impl std::fmt::Display for NetnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetnsError::NotPermitted { command, stderr } => write!(
                f,
                "`{command}` was refused ({}): network-namespace tests need root or \
                 CAP_NET_ADMIN and CAP_SYS_ADMIN (run them as root, e.g. in CI's container)",
                stderr.trim()
            ),
            NetnsError::Command { command, stderr } => {
                write!(f, "`{command}` failed: {}", stderr.trim())
            }
            NetnsError::Invalid(why) => f.write_str(why),
        }
    }
}

/// The `ip`/`tc` argument lists the harness runs: plain data, unit-tested.
pub mod commands {
    /// Address of member `i` (without the prefix length).
    pub fn member_addr(i: usize) -> std::net::Ipv4Addr {
        assert!(i < 250, "at most 250 members");
        std::net::Ipv4Addr::new(10, 213, 0, i as u8 + 1)
    }

    pub fn add_ns(ns: &str) -> Vec<String> {
        strs(&["netns", "add", ns])
    }

    pub fn del_ns(ns: &str) -> Vec<String> {
        strs(&["netns", "del", ns])
    }

    /// Deletes `dev` inside `ns` (both ends of a veth).
    pub fn del_link(ns: &str, dev: &str) -> Vec<String> {
        strs(&["-n", ns, "link", "del", dev])
    }

    /// Brings up `dev` inside `ns`.
    pub fn link_up(ns: &str, dev: &str) -> Vec<String> {
        strs(&["-n", ns, "link", "set", dev, "up"])
    }

    pub fn add_bridge(hub: &str) -> Vec<String> {
        strs(&["-n", hub, "link", "add", "br0", "type", "bridge"])
    }

    /// The veth of member `i`: `v<i>` in the hub, its peer `eth0` straight in the member.
    pub fn add_veth(hub: &str, member_ns: &str, i: usize) -> Vec<String> {
        let v = hub_dev(i);
        strs(&[
            "-n", hub, "link", "add", &v, "type", "veth", "peer", "name", "eth0", "netns",
            member_ns,
        ])
    }

    /// Keeps `dev`'s packets to one Ethernet frame (no 64 KiB GSO super-packets), so a shaper
    /// can work with a bucket of a few frames: see [`burst_bytes`].
    pub fn frame_sized_packets(ns: &str, dev: &str) -> Vec<String> {
        strs(&["-n", ns, "link", "set", dev, "gso_max_size", "1500"])
    }

    pub fn attach_to_bridge(hub: &str, i: usize) -> Vec<String> {
        strs(&["-n", hub, "link", "set", &hub_dev(i), "master", "br0"])
    }

    pub fn add_addr(member_ns: &str, i: usize) -> Vec<String> {
        let a = format!("{}/24", member_addr(i));
        strs(&["-n", member_ns, "addr", "add", &a, "dev", "eth0"])
    }

    /// Host `host` of subnet `subnet` of a two-subnet testbed: `10.214.<subnet + 1>.<host + 1>`
    /// (host 0 is the hub).
    pub fn subnet_addr(subnet: usize, host: usize) -> std::net::Ipv4Addr {
        assert!(subnet < 2 && host < 250, "subnet {subnet}, host {host}");
        std::net::Ipv4Addr::new(10, 214, subnet as u8 + 1, host as u8 + 1)
    }

    /// The hub's bridge of `subnet`.
    pub fn bridge(subnet: usize) -> String {
        format!("br{subnet}")
    }

    pub fn add_named_bridge(hub: &str, name: &str) -> Vec<String> {
        strs(&["-n", hub, "link", "add", name, "type", "bridge"])
    }

    /// Puts member `i`'s hub end on bridge `bridge`.
    pub fn attach_to(hub: &str, i: usize, bridge: &str) -> Vec<String> {
        strs(&["-n", hub, "link", "set", &hub_dev(i), "master", bridge])
    }

    pub fn add_addr_to(ns: &str, dev: &str, cidr: &str) -> Vec<String> {
        strs(&["-n", ns, "addr", "add", cidr, "dev", dev])
    }

    /// Name of member `i`'s veth end in the hub.
    pub fn hub_dev(i: usize) -> String {
        format!("v{i}")
    }

    /// Token-bucket burst for a rate: 5 ms worth of it, at least 16 KiB (a few frames; veths
    /// send frame-sized packets, see [`frame_sized_packets`]).
    ///
    /// The bucket is kept small because it is what a message sent after an idle spell crosses
    /// at wire speed: with 128 KiB, a 150 KB message sent every 0.8 s over a 5 Mbit/s link read
    /// 28.7 Mbit/s, unlike any real link, whose rate bounds every message. With 16 KiB it reads
    /// 5.3. A small bucket needs small packets: tbf checks lengths only as packets enter, so a
    /// 64 KiB GSO packet queued under a fast rate's large bucket blocks the queue for good once
    /// a rate change shrinks the bucket below it.
    pub fn burst_bytes(rate_mbit: f64) -> u64 {
        ((rate_mbit * 1e6 / 8.0 * 0.005) as u64).max(16 * 1024)
    }

    /// `tc` arguments that install or replace a `tbf` shaping `dev` in `ns` to `rate_mbit`
    /// (tc's `mbit` is 10^6 bit/s). The queue holds up to 100 ms of traffic beyond the burst.
    pub fn tbf_replace(ns: &str, dev: &str, rate_mbit: f64) -> Vec<String> {
        let rate_kbit = (rate_mbit * 1000.0).round().max(8.0) as u64;
        strs(&[
            "-n",
            ns,
            "qdisc",
            "replace",
            "dev",
            dev,
            "root",
            "tbf",
            "rate",
            &format!("{rate_kbit}kbit"),
            "burst",
            &burst_bytes(rate_mbit).to_string(),
            "latency",
            "100ms",
        ])
    }

    /// `tc` arguments that remove the shaping of `dev` in `ns`.
    pub fn qdisc_del(ns: &str, dev: &str) -> Vec<String> {
        strs(&["-n", ns, "qdisc", "del", "dev", dev, "root"])
    }

    /// Sets member `i`'s veth end in the hub down or up: a cable pulled at the switch. The
    /// member's `eth0` loses its carrier; nothing is closed, packets just stop.
    pub fn hub_link(hub: &str, i: usize, up: bool) -> Vec<String> {
        let state = if up { "up" } else { "down" };
        strs(&["-n", hub, "link", "set", &hub_dev(i), state])
    }

    /// `tc` arguments that make `dev` in `ns` drop every packet it would send: a queue of no
    /// packets (`pfifo limit 0`). Loss of 100% without `sch_netem`, which not every kernel has;
    /// peers see silence, as with netem's `loss 100%`.
    pub fn drop_everything(ns: &str, dev: &str) -> Vec<String> {
        strs(&[
            "-n", ns, "qdisc", "replace", "dev", dev, "root", "pfifo", "limit", "0",
        ])
    }

    /// `ip netns exec` prefix that runs `bin args...` in `ns`.
    pub fn exec_in(ns: &str, bin: &str, args: &[&str]) -> Vec<String> {
        let mut v = strs(&["netns", "exec", ns, bin]);
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// Namespaces in `ip netns list` output whose name is `<prefix>-<pid>-...` with a pid for
    /// which `alive` is false: what a crashed earlier run left.
    pub fn stale(list: &str, prefix: &str, alive: impl Fn(u32) -> bool) -> Vec<String> {
        list.lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|name| {
                name.strip_prefix(prefix)
                    .and_then(|r| r.strip_prefix('-'))
                    .and_then(|r| r.split('-').next())
                    .and_then(|pid| pid.parse::<u32>().ok())
                    .is_some_and(|pid| !alive(pid))
            })
            .map(str::to_owned)
            .collect()
    }

    fn strs(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }
}

/// Runs a command to completion; its stderr in the error.
fn run(bin: &str, args: &[String]) -> Result<String, NetnsError> {
    let command = format!("{bin} {}", args.join(" "));
    let out = Command::new(bin)
        .args(args)
        .output()
        .map_err(|e| NetnsError::Command {
            command: command.clone(),
            stderr: format!("cannot start `{bin}` ({e}): is iproute2 installed?"),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let refused =
            stderr.contains("Operation not permitted") || stderr.contains("Permission denied");
        return Err(if refused {
            NetnsError::NotPermitted { command, stderr }
        } else {
            NetnsError::Command { command, stderr }
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: Vec<String>) -> Result<String, NetnsError> {
    run("ip", &args)
}

fn tc(args: Vec<String>) -> Result<String, NetnsError> {
    run("tc", &args)
}

/// A hub and `n` member namespaces; all deleted on drop.
///
/// Declare it before the [`Procs`](crate::Procs) whose processes run in it, so that the processes are killed
/// (dropped first) before their namespaces go.
pub struct Netns {
    hub: String,
    members: Vec<String>,
    /// Each member's address.
    addrs: Vec<Ipv4Addr>,
}

impl Netns {
    /// Creates the hub and `n` members named `<prefix>-<pid>-<k>-...`, after deleting stale
    /// namespaces of `prefix` left by dead processes. `prefix`: letters and digits.
    pub fn new(prefix: &str, n: usize) -> Result<Netns, NetnsError> {
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(NetnsError::Invalid(format!(
                "netns prefix `{prefix}`: use letters and digits"
            )));
        }
        if n == 0 || n > 250 {
            return Err(NetnsError::Invalid(format!("{n} members: use 1..=250")));
        }
        sweep_stale(prefix)?;
        let k = HARNESSES.fetch_add(1, Ordering::SeqCst);
        let base = format!("{prefix}-{}-{k}", std::process::id());
        let mut net = Netns {
            hub: format!("{base}-hub"),
            members: Vec::new(),
            addrs: (0..n).map(commands::member_addr).collect(),
        };
        ip(commands::add_ns(&net.hub))?;
        // From here on, drop cleans up whatever was made.
        ip(commands::link_up(&net.hub, "lo"))?;
        ip(commands::add_bridge(&net.hub))?;
        ip(commands::link_up(&net.hub, "br0"))?;
        for i in 0..n {
            let ns = format!("{base}-m{i}");
            ip(commands::add_ns(&ns))?;
            net.members.push(ns.clone());
            ip(commands::link_up(&ns, "lo"))?;
            ip(commands::add_veth(&net.hub, &ns, i))?;
            ip(commands::frame_sized_packets(
                &net.hub,
                &commands::hub_dev(i),
            ))?;
            ip(commands::frame_sized_packets(&ns, "eth0"))?;
            ip(commands::attach_to_bridge(&net.hub, i))?;
            ip(commands::link_up(&net.hub, &commands::hub_dev(i)))?;
            ip(commands::add_addr(&ns, i))?;
            ip(commands::link_up(&ns, "eth0"))?;
        }
        Ok(net)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Two subnets joined only through the hub, which acts as their router host: members
    /// `0..a` on `10.214.1.0/24`, members `a..a+b` on `10.214.2.0/24`, each on its subnet's
    /// bridge in the hub (`br0`, `br1`), which holds the subnet's first address
    /// ([`Netns::gateway`]). The hub forwards no IP packet (a new namespace's default) and
    /// members have no route beyond their subnet: only a process in the hub that listens on
    /// both subnets (a zenoh router) joins them.
    pub fn two_subnets(prefix: &str, a: usize, b: usize) -> Result<Netns, NetnsError> {
        if a == 0 || b == 0 || a + b > 200 {
            return Err(NetnsError::Invalid(format!(
                "{a} and {b} members: each subnet needs 1, at most 200 in all"
            )));
        }
        // The star's hub (named, swept and cleaned up as any), without its one member. Its veth
        // is deleted first, from the hub: that is synchronous, while a deleted namespace's
        // devices go later in the kernel's own time, and `v0` is added again below.
        let mut net = Netns::new(prefix, 1)?;
        ip(commands::del_link(&net.hub, &commands::hub_dev(0)))?;
        ip(commands::del_ns(&net.members.remove(0)))?;
        net.addrs.clear();
        ip(commands::add_named_bridge(&net.hub, "br1"))?;
        ip(commands::link_up(&net.hub, "br1"))?;
        for subnet in 0..2 {
            let cidr = format!("{}/24", commands::subnet_addr(subnet, 0));
            ip(commands::add_addr_to(
                &net.hub,
                &commands::bridge(subnet),
                &cidr,
            ))?;
        }
        let base = net.hub.trim_end_matches("-hub").to_owned();
        for i in 0..a + b {
            let (subnet, host) = if i < a { (0, i + 1) } else { (1, i - a + 1) };
            let ns = format!("{base}-m{i}");
            ip(commands::add_ns(&ns))?;
            net.members.push(ns.clone());
            ip(commands::link_up(&ns, "lo"))?;
            ip(commands::add_veth(&net.hub, &ns, i))?;
            ip(commands::attach_to(&net.hub, i, &commands::bridge(subnet)))?;
            ip(commands::link_up(&net.hub, &commands::hub_dev(i)))?;
            let addr = commands::subnet_addr(subnet, host);
            ip(commands::add_addr_to(&ns, "eth0", &format!("{addr}/24")))?;
            ip(commands::link_up(&ns, "eth0"))?;
            net.addrs.push(addr);
        }
        Ok(net)
    }

    /// The hub's namespace (on [`Netns::two_subnets`], the router host's).
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// The hub's address on `subnet` (0 or 1) of [`Netns::two_subnets`].
    pub fn gateway(&self, subnet: usize) -> Ipv4Addr {
        commands::subnet_addr(subnet, 0)
    }

    /// Namespace name of member `i`.
    pub fn ns(&self, i: usize) -> &str {
        &self.members[i]
    }

    /// Address of member `i` (reachable from every member).
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        assert!(
            i < self.members.len(),
            "member {i} of {}",
            self.members.len()
        );
        self.addrs[i]
    }

    fn dev_of(&self, link: Link) -> Result<(&str, String), NetnsError> {
        if link.member >= self.members.len() {
            return Err(NetnsError::Invalid(format!(
                "link of member {} but there are {}",
                link.member,
                self.members.len()
            )));
        }
        Ok(match link.direction {
            Direction::Egress => (self.members[link.member].as_str(), "eth0".to_owned()),
            Direction::Ingress => (self.hub.as_str(), commands::hub_dev(link.member)),
        })
    }

    /// Shapes `link` to `rate_mbit` Mbit/s (10^6 bit/s), replacing any earlier rate: callable
    /// while traffic flows.
    pub fn set_rate(&self, link: Link, rate_mbit: f64) -> Result<(), NetnsError> {
        if !(rate_mbit.is_finite() && rate_mbit > 0.0) {
            return Err(NetnsError::Invalid(format!(
                "rate {rate_mbit} Mbit/s: must be positive"
            )));
        }
        let (ns, dev) = self.dev_of(link)?;
        tc(commands::tbf_replace(ns, &dev, rate_mbit)).map(|_| ())
    }

    /// Removes the shaping of `link` (no error when it had none).
    pub fn unshape(&self, link: Link) -> Result<(), NetnsError> {
        let (ns, dev) = self.dev_of(link)?;
        match tc(commands::qdisc_del(ns, &dev)) {
            Ok(_) => Ok(()),
            Err(NetnsError::Command { stderr, .. })
                if stderr.contains("No such file")
                    || stderr.contains("Cannot delete qdisc with handle of zero") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Cuts member `i` off silently with `fault`; [`Netns::heal`] undoes it.
    pub fn fault(&self, i: usize, fault: LinkFault) -> Result<(), NetnsError> {
        self.faulty(i, fault, true)
    }

    /// Undoes [`Netns::fault`]. Healing a loss removes the link's shaping too.
    pub fn heal(&self, i: usize, fault: LinkFault) -> Result<(), NetnsError> {
        self.faulty(i, fault, false)
    }

    fn faulty(&self, i: usize, fault: LinkFault, on: bool) -> Result<(), NetnsError> {
        self.dev_of(Link::egress(i))?;
        match fault {
            LinkFault::Down => ip(commands::hub_link(&self.hub, i, !on)).map(|_| ()),
            LinkFault::Loss => {
                for link in [Link::egress(i), Link::ingress(i)] {
                    if on {
                        let (ns, dev) = self.dev_of(link)?;
                        tc(commands::drop_everything(ns, &dev))?;
                    } else {
                        self.unshape(link)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// `tc -s qdisc` of `link`, for failure messages (bytes sent, drops, overlimits).
    pub fn qdisc_stats(&self, link: Link) -> String {
        match self.dev_of(link) {
            Ok((ns, dev)) => tc(vec![
                "-n".into(),
                ns.into(),
                "-s".into(),
                "qdisc".into(),
                "show".into(),
                "dev".into(),
                dev,
            ])
            .unwrap_or_else(|e| e.to_string()),
            Err(e) => e.to_string(),
        }
    }

    /// Runs `f` on a thread that has entered member `i`'s network namespace: sockets it opens
    /// live there. The calling thread's namespace is untouched.
    pub fn run_in<T: Send>(&self, i: usize, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.ns(i));
        std::thread::scope(|s| {
            s.spawn(|| {
                enter(&path).unwrap_or_else(|e| panic!("{e}"));
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

/// Moves the calling thread into the network namespace mounted at `path`.
fn enter(path: &str) -> Result<(), NetnsError> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).map_err(|e| NetnsError::Command {
        command: format!("open {path}"),
        stderr: e.to_string(),
    })?;
    // SAFETY: setns on a valid open descriptor only changes this thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        let command = format!("setns({path}, CLONE_NEWNET)");
        return Err(if err.raw_os_error() == Some(libc::EPERM) {
            NetnsError::NotPermitted {
                command,
                stderr: err.to_string(),
            }
        } else {
            NetnsError::Command {
                command,
                stderr: err.to_string(),
            }
        });
    }
    Ok(())
}

/// Deletes namespaces of `prefix` whose creating process is gone.
pub fn sweep_stale(prefix: &str) -> Result<Vec<String>, NetnsError> {
    let list = ip(vec!["netns".into(), "list".into()])?;
    let stale = commands::stale(&list, prefix, |pid| {
        Path::new(&format!("/proc/{pid}")).exists()
    });
    for ns in &stale {
        if let Err(e) = ip(commands::del_ns(ns)) {
            eprintln!("removing stale namespace {ns}: {e}");
        }
    }
    Ok(stale)
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth ends in it, and with them their peers.
        for ns in self.members.iter().chain(std::iter::once(&self.hub)) {
            if let Err(e) = ip(commands::del_ns(ns)) {
                eprintln!("cleaning up namespace {ns}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::commands::*;

    #[test]
    fn veth_is_created_in_the_hub_with_its_peer_in_the_member() {
        assert_eq!(
            add_veth("h", "m", 3).join(" "),
            "-n h link add v3 type veth peer name eth0 netns m"
        );
        assert_eq!(
            add_addr("m", 3).join(" "),
            "-n m addr add 10.213.0.4/24 dev eth0"
        );
        assert_eq!(
            attach_to_bridge("h", 3).join(" "),
            "-n h link set v3 master br0"
        );
    }

    #[test]
    fn tbf_replaces_the_root_qdisc_at_the_rate_in_kbit() {
        assert_eq!(
            tbf_replace("m", "eth0", 20.0).join(" "),
            "-n m qdisc replace dev eth0 root tbf rate 20000kbit burst 16384 latency 100ms"
        );
        // Fast links get 5 ms of burst.
        assert_eq!(burst_bytes(1000.0), 625_000);
        assert_eq!(
            tbf_replace("m", "eth0", 0.5).join(" "),
            "-n m qdisc replace dev eth0 root tbf rate 500kbit burst 16384 latency 100ms"
        );
        assert_eq!(
            frame_sized_packets("m", "eth0").join(" "),
            "-n m link set eth0 gso_max_size 1500"
        );
    }

    #[test]
    fn a_cut_sets_the_hub_end_down_and_a_loss_queues_no_packet() {
        assert_eq!(hub_link("h", 2, false).join(" "), "-n h link set v2 down");
        assert_eq!(hub_link("h", 2, true).join(" "), "-n h link set v2 up");
        assert_eq!(
            drop_everything("m", "eth0").join(" "),
            "-n m qdisc replace dev eth0 root pfifo limit 0"
        );
    }

    #[test]
    fn exec_runs_the_program_with_its_arguments_in_the_namespace() {
        assert_eq!(
            exec_in("m", "/bin/qp", &["node", "--config", "a b.toml"]),
            vec!["netns", "exec", "m", "/bin/qp", "node", "--config", "a b.toml"]
        );
    }

    #[test]
    fn two_subnets_put_each_member_on_its_subnets_bridge() {
        assert_eq!(subnet_addr(0, 0).to_string(), "10.214.1.1");
        assert_eq!(subnet_addr(1, 2).to_string(), "10.214.2.3");
        assert_eq!(
            attach_to("h", 3, &bridge(1)).join(" "),
            "-n h link set v3 master br1"
        );
        assert_eq!(
            add_addr_to("h", "br1", "10.214.2.1/24").join(" "),
            "-n h addr add 10.214.2.1/24 dev br1"
        );
        assert_eq!(
            add_named_bridge("h", "br1").join(" "),
            "-n h link add br1 type bridge"
        );
    }

    #[test]
    fn stale_namespaces_are_those_of_dead_pids_with_the_prefix() {
        let list = "qpt-100-0-hub (id: 3)\nqpt-100-0-m0\nqpt-200-1-m0 (id: 1)\nqptx-100-0-m0\nother\nqpt-abc-0\n";
        let stale = stale(list, "qpt", |pid| pid == 200);
        assert_eq!(stale, vec!["qpt-100-0-hub", "qpt-100-0-m0"]);
    }
}
