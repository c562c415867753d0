//! The accuracy table: one row per (model, cut, clip, bits), fp32 first.

use super::pipeline::Setting;
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub model: String,
    pub dataset: String,
    /// Units after which activations were quantized (empty for fp32), and how they were named.
    pub cut: String,
    pub cuts: Vec<usize>,
    /// `fp32`, or the clipping method.
    pub clip: String,
    /// Bits per value (32 = raw f32 through the codec); absent for fp32.
    pub bits: Option<u8>,
    #[serde(flatten)]
    pub scores: Scores,
}

/// How one setting did on the test items.
#[derive(Debug, Clone, Serialize)]
pub struct Scores {
    pub items: usize,
    /// Label accuracy (BBC: 1-nearest-neighbour over fp32 training embeddings).
    pub accuracy: f64,
    /// Fraction of items whose predicted label equals the fp32 prediction.
    pub agreement: f64,
    /// BBC: 5-nearest-neighbour label accuracy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy_k5: Option<f64>,
    /// BBC: cosine of each item's embedding with its fp32 embedding, mean and minimum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosine_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosine_min: Option<f64>,
}

impl Row {
    /// The `clip` and `bits` columns of a setting.
    pub fn setting_columns(setting: Setting) -> (String, Option<u8>) {
        match setting {
            Setting::Fp32 => ("fp32".into(), None),
            Setting::Quant { clip, bits } => (clip.name().into(), Some(bits.get())),
        }
    }
}

/// A markdown table (percentages with two decimals), ready for README.md.
pub fn markdown(rows: &[Row]) -> String {
    let text = rows.iter().any(|r| r.scores.cosine_mean.is_some());
    let mut out =
        String::from("| model | dataset | cut | clip | bits | accuracy % | agreement % |");
    if text {
        out.push_str(" 5-NN accuracy % | cosine mean | cosine min |");
    }
    out.push_str("\n|---|---|---|---|---|---:|---:|");
    if text {
        out.push_str("---:|---:|---:|");
    }
    out.push('\n');
    let pct = |x: f64| format!("{:.2}", 100.0 * x);
    let opt = |x: Option<f64>, f: &dyn Fn(f64) -> String| x.map(f).unwrap_or_else(|| "-".into());
    for r in rows {
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.model,
            r.dataset,
            r.cut,
            r.clip,
            r.bits.map_or("-".into(), |b| b.to_string()),
            pct(r.scores.accuracy),
            pct(r.scores.agreement)
        );
        if text {
            let _ = write!(
                out,
                " {} | {} | {} |",
                opt(r.scores.accuracy_k5, &pct),
                opt(r.scores.cosine_mean, &|x| format!("{x:.4}")),
                opt(r.scores.cosine_min, &|x| format!("{x:.4}"))
            );
        }
        out.push('\n');
    }
    out
}
