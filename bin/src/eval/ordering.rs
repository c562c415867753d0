//! Per-cell ordering of the clipping methods: for each (model, cut, bits) measured with naive,
//! ACIQ and DS-ACIQ, whether DS-ACIQ's accuracy is at least each of the others'.

use super::table::Row;
use std::fmt::Write;

/// One (model, cut, bits) cell with the three methods' accuracies.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub model: String,
    pub cut: String,
    pub bits: u8,
    pub naive: f64,
    pub aciq: f64,
    pub ds_aciq: f64,
}

impl Cell {
    /// DS-ACIQ's accuracy minus the better of naive's and ACIQ's (>= 0: never worse).
    pub fn margin(&self) -> f64 {
        self.ds_aciq - self.naive.max(self.aciq)
    }
}

/// The cells for which `rows` hold all three methods, in the order they first appear.
pub fn cells(rows: &[Row]) -> Vec<Cell> {
    let accuracy = |model: &str, cut: &str, bits: u8, clip: &str| {
        rows.iter()
            .find(|r| r.model == model && r.cut == cut && r.bits == Some(bits) && r.clip == clip)
            .map(|r| r.scores.accuracy)
    };
    let mut out: Vec<Cell> = Vec::new();
    for r in rows {
        let Some(bits) = r.bits.filter(|&b| b <= 16) else {
            continue;
        };
        if out
            .iter()
            .any(|c| c.model == r.model && c.cut == r.cut && c.bits == bits)
        {
            continue;
        }
        let get = |clip| accuracy(&r.model, &r.cut, bits, clip);
        if let (Some(naive), Some(aciq), Some(ds_aciq)) =
            (get("naive"), get("aciq"), get("ds-aciq"))
        {
            out.push(Cell {
                model: r.model.clone(),
                cut: r.cut.clone(),
                bits,
                naive,
                aciq,
                ds_aciq,
            });
        }
    }
    out
}

/// A markdown table of [`cells`]: accuracies in percent, and per cell whether DS-ACIQ >= naive
/// and >= ACIQ (with the shortfall in points where not). Empty without such cells.
pub fn markdown(rows: &[Row]) -> String {
    let cells = cells(rows);
    if cells.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n| model | cut | bits | naive % | ACIQ % | DS-ACIQ % | DS-ACIQ >= naive | DS-ACIQ >= ACIQ | DS-ACIQ - best other, points |\n|---|---|---:|---:|---:|---:|---|---|---:|\n",
    );
    let verdict = |ds: f64, other: f64| {
        if ds >= other {
            "yes".to_string()
        } else {
            format!("no ({:+.2})", 100.0 * (ds - other))
        }
    };
    for c in &cells {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {:+.2} |",
            c.model,
            c.cut,
            c.bits,
            100.0 * c.naive,
            100.0 * c.aciq,
            100.0 * c.ds_aciq,
            verdict(c.ds_aciq, c.naive),
            verdict(c.ds_aciq, c.aciq),
            100.0 * c.margin()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::table::Scores;

    fn row(cut: &str, clip: &str, bits: Option<u8>, accuracy: f64) -> Row {
        Row {
            model: "m".into(),
            dataset: "d".into(),
            cut: cut.into(),
            cuts: vec![],
            clip: clip.into(),
            bits,
            scores: Scores {
                items: 10,
                accuracy,
                agreement: 1.0,
                accuracy_k5: None,
                cosine_mean: None,
                cosine_min: None,
            },
        }
    }

    #[test]
    fn each_cell_says_whether_ds_aciq_loses_and_by_how_much() {
        let rows = vec![
            row("-", "fp32", None, 0.9),
            row("mid", "naive", Some(4), 0.9),
            row("mid", "aciq", Some(4), 0.8),
            row("mid", "ds-aciq", Some(4), 0.85),
            row("mid", "naive", Some(8), 0.9),
            row("mid", "aciq", Some(8), 0.9),
            row("mid", "ds-aciq", Some(8), 0.9),
            row("mid", "naive", Some(32), 0.9),
            row("all", "naive", Some(2), 0.1),
        ];
        let cells = cells(&rows);
        assert_eq!(cells.len(), 2, "{cells:?}");
        assert!((cells[0].margin() + 0.05).abs() < 1e-12);
        assert_eq!(cells[1].margin(), 0.0);
        let md = markdown(&rows);
        assert!(
            md.contains("| m | mid | 4 | 90.00 | 80.00 | 85.00 | no (-5.00) | yes | -5.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| m | mid | 8 | 90.00 | 90.00 | 90.00 | yes | yes | +0.00 |"),
            "{md}"
        );
        assert!(markdown(&rows[..1]).is_empty());
    }
}
