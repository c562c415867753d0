//! PipeEdge's profile files, schema for schema:
//!
//! ```yaml
//! # models.yml: per model, per layer (unit) lists
//! ViT-Base:
//!   layers: 48
//!   mem_MB: [..48 floats..]          # weight memory per layer, MiB
//!   parameters_in: 150528            # elements per sample entering layer 1
//!   parameters_out: [..48 ints..]    # elements per sample leaving each layer
//! # device_types.yml
//! MB-4:
//!   mem_MB: 4096                     # MiB available
//!   bw_Mbps: 1000
//!   model_profiles:
//!     ViT-Base:
//!       - {dtype: torch.float32, batch_size: 8, time_s: [..48 floats..]}
//! # devices.yml: type -> hostnames
//! MB-4: [mb-0, mb-1]
//! ```
//!
//! `parameters_in` is also accepted as a per-layer list (its first entry is used), and a
//! `model_profiles` entry as a single mapping without dtype/batch_size, as older files have.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{Device, Fleet, ModelProfile};

const MIB: f64 = 1024.0 * 1024.0;

/// Profile file failures.
#[derive(Debug, Error)]
pub enum ProfileError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Yaml {
        path: String,
        source: serde_yaml::Error,
    },
    #[error("model {0} is not in models.yml")]
    UnknownModel(String),
    #[error("model {model}: {field} has {found} entries but layers is {layers}")]
    Shape {
        model: String,
        field: &'static str,
        layers: usize,
        found: usize,
    },
    #[error("device type {0} (from devices.yml) is not in device_types.yml")]
    UnknownDeviceType(String),
    #[error("device type {device_type} has no profile for model {model}{detail}")]
    NoProfile {
        device_type: String,
        model: String,
        detail: String,
    },
    #[error("unknown dtype {0} (use torch.float32, torch.float16, torch.bfloat16, ...)")]
    UnknownDtype(String),
}

/// One model entry of `models.yml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub layers: usize,
    #[serde(rename = "mem_MB")]
    pub mem_mb: Vec<f64>,
    pub parameters_in: ScalarOrList,
    pub parameters_out: Vec<u64>,
}

/// `parameters_in` as written by PipeEdge (a number) or as a per-layer list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScalarOrList {
    Scalar(u64),
    List(Vec<u64>),
}

impl ScalarOrList {
    fn first(&self) -> u64 {
        match self {
            ScalarOrList::Scalar(x) => *x,
            ScalarOrList::List(v) => v.first().copied().unwrap_or(0),
        }
    }
}

/// `models.yml`: model name -> entry.
pub type ModelsYml = BTreeMap<String, ModelEntry>;

/// One measured profile of a model on a device type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelProfileEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Seconds per layer (unit) for one batch of `batch_size`.
    pub time_s: Vec<f64>,
}

/// A model's profiles on a device type: a list, or one mapping (older files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProfileEntries {
    List(Vec<ModelProfileEntry>),
    One(ModelProfileEntry),
}

impl ProfileEntries {
    fn entries(&self) -> Vec<&ModelProfileEntry> {
        match self {
            ProfileEntries::List(v) => v.iter().collect(),
            ProfileEntries::One(e) => vec![e],
        }
    }
}

/// One entry of `device_types.yml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceTypeEntry {
    #[serde(rename = "mem_MB")]
    pub mem_mb: f64,
    #[serde(rename = "bw_Mbps")]
    pub bw_mbps: f64,
    #[serde(default)]
    pub model_profiles: BTreeMap<String, ProfileEntries>,
}

/// `device_types.yml`: type name -> entry.
pub type DeviceTypesYml = BTreeMap<String, DeviceTypeEntry>;
/// `devices.yml`: type name -> host names.
pub type DevicesYml = BTreeMap<String, Vec<String>>;

/// Reads and parses a YAML file.
pub fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ProfileError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
        path: p.clone(),
        source,
    })?;
    serde_yaml::from_str(&text).map_err(|source| ProfileError::Yaml { path: p, source })
}

/// Serialises to YAML and writes the file.
pub fn write_yaml<T: Serialize>(path: &Path, value: &T) -> Result<(), ProfileError> {
    let p = path.display().to_string();
    let text = serde_yaml::to_string(value).map_err(|source| ProfileError::Yaml {
        path: p.clone(),
        source,
    })?;
    std::fs::write(path, text).map_err(|source| ProfileError::Io { path: p, source })
}

/// Adds or replaces `model` in the `models.yml` at `path` (created if missing), keeping other
/// models as they are. What `quantpipe profile` calls.
pub fn upsert_model(path: &Path, model: &str, entry: ModelEntry) -> Result<(), ProfileError> {
    let mut all: ModelsYml = if path.exists() {
        read_yaml(path)?
    } else {
        ModelsYml::new()
    };
    all.insert(model.to_string(), entry);
    write_yaml(path, &all)
}

/// Adds or replaces the profile of (`device_type`, `model`, dtype, batch size) in the
/// `device_types.yml` at `path` (created if missing); `mem_mb`/`bw_mbps` set the type's entry
/// when it is new. What `quantpipe profile` calls.
pub fn upsert_device_profile(
    path: &Path,
    device_type: &str,
    mem_mb: f64,
    bw_mbps: f64,
    model: &str,
    profile: ModelProfileEntry,
) -> Result<(), ProfileError> {
    let mut all: DeviceTypesYml = if path.exists() {
        read_yaml(path)?
    } else {
        DeviceTypesYml::new()
    };
    let entry = all
        .entry(device_type.to_string())
        .or_insert_with(|| DeviceTypeEntry {
            mem_mb,
            bw_mbps,
            model_profiles: BTreeMap::new(),
        });
    let mut list: Vec<ModelProfileEntry> = entry
        .model_profiles
        .get(model)
        .map(|p| p.entries().into_iter().cloned().collect())
        .unwrap_or_default();
    list.retain(|e| !(e.dtype == profile.dtype && e.batch_size == profile.batch_size));
    list.push(profile);
    entry
        .model_profiles
        .insert(model.to_string(), ProfileEntries::List(list));
    write_yaml(path, &all)
}

impl ModelEntry {
    /// The `models.yml` entry of a planner profile (weights in MiB, elements per layer).
    pub fn from_profile(p: &ModelProfile) -> Self {
        let n = p.units();
        ModelEntry {
            layers: n,
            mem_mb: p.weight_bytes.iter().map(|b| *b as f64 / MIB).collect(),
            parameters_in: ScalarOrList::Scalar(p.input_elements),
            parameters_out: (1..=n).map(|k| p.boundary_elements(k)).collect(),
        }
    }
}

/// Bytes per value of a PipeEdge dtype string.
pub fn dtype_bytes(dtype: &str) -> Result<u32, ProfileError> {
    let d = dtype.trim_start_matches("torch.");
    Ok(match d {
        "float32" | "float" | "f32" => 4,
        "float16" | "half" | "bfloat16" | "f16" | "bf16" => 2,
        "float64" | "double" => 8,
        "int8" | "uint8" => 1,
        _ => return Err(ProfileError::UnknownDtype(dtype.to_string())),
    })
}

/// Builds the planner's model profile and fleet from PipeEdge files.
///
/// Compute times come from the profile whose `batch_size` equals `ubatch` (and whose dtype
/// matches, when the entry names one). Without an exact batch match, the nearest profiled batch
/// size is scaled linearly per item — an approximation, since small batches use devices less
/// well; profile the batch size you plan for when it matters. Devices are listed type by type in
/// `devices.yml` order; memory is `mem_MB` MiB, bandwidth `bw_Mbps`.
pub fn load_planner_inputs(
    models: &ModelsYml,
    device_types: &DeviceTypesYml,
    devices: &DevicesYml,
    model: &str,
    ubatch: usize,
    dtype: &str,
) -> Result<(ModelProfile, Fleet), ProfileError> {
    let m = models
        .get(model)
        .ok_or_else(|| ProfileError::UnknownModel(model.to_string()))?;
    let n = m.layers;
    let shape = |field: &'static str, found: usize| ProfileError::Shape {
        model: model.to_string(),
        field,
        layers: n,
        found,
    };
    if m.mem_mb.len() != n {
        return Err(shape("mem_MB", m.mem_mb.len()));
    }
    if m.parameters_out.len() != n {
        return Err(shape("parameters_out", m.parameters_out.len()));
    }
    let mut compute_s = BTreeMap::new();
    let mut devs = Vec::new();
    for (ty, hosts) in devices {
        let t = device_types
            .get(ty)
            .ok_or_else(|| ProfileError::UnknownDeviceType(ty.clone()))?;
        if !compute_s.contains_key(ty) {
            compute_s.insert(ty.clone(), select_times(t, ty, model, n, ubatch, dtype)?);
        }
        for h in hosts {
            devs.push(Device {
                name: h.clone(),
                device_type: ty.clone(),
                mem_bytes: (t.mem_mb * MIB) as u64,
                bw_mbps: t.bw_mbps,
            });
        }
    }
    let profile = ModelProfile {
        name: model.to_string(),
        weight_bytes: m.mem_mb.iter().map(|x| (x * MIB).round() as u64).collect(),
        cut_elements: m.parameters_out[..n.saturating_sub(1)].to_vec(),
        input_elements: m.parameters_in.first(),
        output_elements: m.parameters_out.last().copied().unwrap_or(0),
        compute_s,
    };
    Ok((profile, Fleet::new(devs)))
}

fn select_times(
    t: &DeviceTypeEntry,
    ty: &str,
    model: &str,
    n: usize,
    ubatch: usize,
    dtype: &str,
) -> Result<Vec<f64>, ProfileError> {
    let no = |detail: String| ProfileError::NoProfile {
        device_type: ty.to_string(),
        model: model.to_string(),
        detail,
    };
    let entries: Vec<&ModelProfileEntry> = t
        .model_profiles
        .get(model)
        .map(|p| p.entries())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.dtype.as_deref().is_none_or(|d| d == dtype))
        .collect();
    let best = entries
        .iter()
        .min_by_key(|e| e.batch_size.unwrap_or(ubatch).abs_diff(ubatch))
        .ok_or_else(|| no(format!(" with dtype {dtype}")))?;
    if best.time_s.len() != n {
        return Err(no(format!(
            ": time_s has {} entries, expected {n}",
            best.time_s.len()
        )));
    }
    let scale = ubatch as f64 / best.batch_size.unwrap_or(ubatch).max(1) as f64;
    Ok(best.time_s.iter().map(|x| x * scale).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODELS: &str = "
tiny:
  layers: 4
  mem_MB: [1.0, 1.0, 2.0, 2.0]
  parameters_in: 100
  parameters_out: [200, 100, 500, 10]
";
    const TYPES: &str = "
fast:
  mem_MB: 16
  bw_Mbps: 1000
  model_profiles:
    tiny:
      - {dtype: torch.float32, batch_size: 8, time_s: [0.1, 0.1, 0.2, 0.2]}
      - {dtype: torch.float32, batch_size: 1, time_s: [0.05, 0.05, 0.05, 0.05]}
old:
  mem_MB: 8
  bw_Mbps: 100
  model_profiles:
    tiny:
      time_s: [1, 1, 1, 1]
";
    const DEVICES: &str = "
fast: [f0, f1]
old: [o0]
";

    #[test]
    fn reads_pipeedge_files_as_they_are() {
        let m: ModelsYml = serde_yaml::from_str(MODELS).unwrap();
        let t: DeviceTypesYml = serde_yaml::from_str(TYPES).unwrap();
        let d: DevicesYml = serde_yaml::from_str(DEVICES).unwrap();
        let (p, f) = load_planner_inputs(&m, &t, &d, "tiny", 8, "torch.float32").unwrap();
        assert_eq!(p.cut_elements, vec![200, 100, 500]);
        assert_eq!((p.input_elements, p.output_elements), (100, 10));
        assert_eq!(p.weight_bytes[2], 2 * 1024 * 1024);
        // Exact batch match; the old single-mapping profile is used as is.
        assert_eq!(p.compute_s["fast"], vec![0.1, 0.1, 0.2, 0.2]);
        assert_eq!(p.compute_s["old"], vec![1.0; 4]);
        // No batch-2 profile: the nearest (1) scaled per item.
        let (p2, _) = load_planner_inputs(&m, &t, &d, "tiny", 2, "torch.float32").unwrap();
        assert_eq!(p2.compute_s["fast"], vec![0.1; 4]);
        let names: Vec<_> = f.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["f0", "f1", "o0"]);
        assert_eq!(f.devices[2].mem_bytes, 8 * 1024 * 1024);
        assert!(matches!(
            load_planner_inputs(&m, &t, &d, "big", 4, "torch.float32"),
            Err(ProfileError::UnknownModel(_))
        ));
        assert!(matches!(
            load_planner_inputs(&m, &t, &d, "tiny", 4, "torch.float16"),
            Err(ProfileError::NoProfile { .. })
        ));
    }

    #[test]
    fn writers_round_trip_and_upsert() {
        let dir = std::env::temp_dir().join(format!("qp-profiles-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let models = dir.join("models.yml");
        let types = dir.join("device_types.yml");
        let _ = std::fs::remove_file(&models);
        let _ = std::fs::remove_file(&types);
        let m: ModelsYml = serde_yaml::from_str(MODELS).unwrap();
        upsert_model(&models, "tiny", m["tiny"].clone()).unwrap();
        let back: ModelsYml = read_yaml(&models).unwrap();
        assert_eq!(back, m);
        let e = |bs, t: f64| ModelProfileEntry {
            dtype: Some("torch.float32".into()),
            batch_size: Some(bs),
            time_s: vec![t; 4],
        };
        upsert_device_profile(&types, "fast", 16.0, 1000.0, "tiny", e(8, 0.1)).unwrap();
        upsert_device_profile(&types, "fast", 16.0, 1000.0, "tiny", e(1, 0.2)).unwrap();
        upsert_device_profile(&types, "fast", 16.0, 1000.0, "tiny", e(8, 0.3)).unwrap();
        let t: DeviceTypesYml = read_yaml(&types).unwrap();
        let entries = t["fast"].model_profiles["tiny"].entries();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].time_s[0], 0.3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
