//! The emulated devices of the demo fleet.

use std::collections::BTreeMap;

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

/// Items/s of `devices` together were the model split among them in perfect balance: the sum of
/// each device's rate over the whole model, from the seconds a microbatch of `ubatch` items
/// takes at each thread count (before the slowdown). The planner's bound is a little below it.
pub fn balanced_items_per_s(
    devices: &[DemoDevice],
    whole_model_s: &BTreeMap<i32, f64>,
    ubatch: usize,
) -> f64 {
    devices
        .iter()
        .filter_map(|d| whole_model_s.get(&d.threads).map(|t| (d, t)))
        .map(|(d, t)| ubatch as f64 / (t * d.slowdown))
        .sum()
}

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
    fn the_balanced_rate_sums_each_device_rate_over_the_whole_model() {
        let whole = BTreeMap::from([(1, 0.25), (2, 0.125)]);
        let devices = [
            DemoDevice {
                name: "a",
                threads: 1,
                slowdown: 4.0,
            },
            DemoDevice {
                name: "c",
                threads: 2,
                slowdown: 2.0,
            },
        ];
        // 8 items per 1 s, plus 8 items per 0.25 s.
        assert!((balanced_items_per_s(&devices, &whole, 8) - 40.0).abs() < 1e-9);
        assert_eq!(balanced_items_per_s(&devices, &BTreeMap::new(), 8), 0.0);
    }

    #[test]
    fn a_node_outside_the_demo_fleet_is_no_device() {
        assert_eq!(named("board-b").map(|d| d.slowdown), Some(6.0));
        assert!(named("demo-client").is_none());
    }
}
