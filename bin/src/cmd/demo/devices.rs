//! The emulated devices of the demo fleet.

/// One emulated device of the demo fleet.
pub struct DemoDevice {
    pub name: &'static str,
    pub threads: i32,
    pub slowdown: f64,
}

pub const DEVICES: [DemoDevice; 3] = [
    DemoDevice {
        name: "board-a",
        threads: 1,
        slowdown: 4.0,
    },
    DemoDevice {
        name: "board-b",
        threads: 1,
        slowdown: 6.0,
    },
    DemoDevice {
        name: "laptop-c",
        threads: 2,
        slowdown: 3.0,
    },
];

/// The device with the least emulated slowdown per thread: the single-device baseline.
pub fn fastest(devices: &[DemoDevice]) -> Option<&DemoDevice> {
    devices
        .iter()
        .min_by(|a, b| (a.slowdown / a.threads as f64).total_cmp(&(b.slowdown / b.threads as f64)))
}

/// The demo device called `name`, if the node is one.
pub fn named(name: &str) -> Option<&'static DemoDevice> {
    DEVICES.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fastest_device_has_the_least_slowdown_per_thread() {
        assert_eq!(fastest(&DEVICES).map(|d| d.name), Some("laptop-c"));
        assert!(fastest(&[]).is_none());
    }

    #[test]
    fn a_node_outside_the_demo_fleet_is_no_device() {
        assert_eq!(named("board-b").map(|d| d.slowdown), Some(6.0));
        assert!(named("demo-client").is_none());
    }
}
