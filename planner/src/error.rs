//! Why a plan could not be made. Each variant names the input or constraint at fault.

use thiserror::Error;

/// Planner failures.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PlanError {
    #[error("model {model} has no units")]
    EmptyModel { model: String },
    #[error("model {model}: {field} has {found} entries, expected {expected}")]
    ProfileShape {
        model: String,
        field: String,
        expected: usize,
        found: usize,
    },
    #[error("device type {device_type}: compute time of unit {unit} is {value}, not a finite non-negative number")]
    BadComputeTime {
        device_type: String,
        unit: usize,
        value: f64,
    },
    #[error("model {model} has no compute profile for device type {device_type}")]
    MissingProfile { model: String, device_type: String },
    #[error("the fleet has no devices")]
    NoDevices,
    #[error("device name {name} appears twice in the fleet")]
    DuplicateDevice { name: String },
    #[error("device {device}: bandwidth {value} Mbit/s is not a finite non-negative number")]
    BadBandwidth { device: String, value: f64 },
    #[error("link matrix must be {devices}x{devices} (bandwidth and latency)")]
    LinkMatrixShape { devices: usize },
    #[error("bitwidth {bits} is not allowed (1-16, or 32 for raw)")]
    BadBitwidth { bits: u8 },
    #[error("bitwidth list has {found} entries, expected one per cut ({expected})")]
    BitsShape { expected: usize, found: usize },
    #[error(
        "cut after unit {cut}: no bitwidth in menu {menu:?} is at least the minimum {min_bits}"
    )]
    NoAllowedBitwidth {
        cut: usize,
        min_bits: u8,
        menu: Vec<u8>,
    },
    #[error("microbatch size must be at least 1")]
    ZeroMicrobatch,
    #[error("memory: unit {unit} needs {required_bytes} bytes (weights + buffers) but the largest device has {largest_bytes}")]
    UnitTooLarge {
        unit: usize,
        required_bytes: u64,
        largest_bytes: u64,
    },
    #[error("memory: the model's {model_bytes} weight bytes cannot be split over the fleet ({fleet_bytes} bytes on {devices} devices) with its buffers")]
    FleetMemoryExhausted {
        model_bytes: u64,
        fleet_bytes: u64,
        devices: usize,
    },
    #[error(
        "links: every split that fits memory needs a link that does not exist (zero bandwidth)"
    )]
    NoUsableLink,
    #[error("too many distinct device classes ({classes}) or devices per class ({per_class}) for the exact planner (limits 16 and 127)")]
    TooManyClasses { classes: usize, per_class: usize },
    #[error("plan: stages must cover units 1..{units} contiguously and in order ({detail})")]
    BadStages { units: usize, detail: String },
    #[error("memory: device {device} needs {required_bytes} bytes for units {l}..{r} but has {available_bytes}")]
    MemoryExceeded {
        device: String,
        l: usize,
        r: usize,
        required_bytes: u64,
        available_bytes: u64,
    },
    #[error("{devices} devices: the exact per-link planner handles at most {max}")]
    TooManyDevices { devices: usize, max: usize },
    #[error("planning did not finish before its deadline")]
    Deadline,
    #[error("exhaustive search is limited to {max_devices} devices and {max_units} units")]
    TooLargeForExhaustive {
        max_devices: usize,
        max_units: usize,
    },
}
