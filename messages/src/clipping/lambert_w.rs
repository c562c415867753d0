//! The principal branch of the Lambert W function, for ACIQ's `alpha = W(3 * 4^M) * b`.
//!
//! W(z) solves w * e^w = z. Only z >= 0 is needed (3 * 4^M >= 12), so this is a small Halley
//! iteration (cubic convergence) from the asymptotic start `ln z - ln ln z` (or `ln(1 + z)` for
//! small z), instead of a dependency.

/// W0(z) for z >= 0; NaN for negative or NaN z, +inf for +inf.
pub fn lambert_w0(z: f64) -> f64 {
    if z.is_nan() || z < 0.0 {
        return f64::NAN;
    }
    if z == 0.0 || z.is_infinite() {
        return z;
    }
    let mut w = if z < 3.0 {
        (1.0 + z).ln()
    } else {
        let l = z.ln();
        l - l.ln()
    };
    for _ in 0..32 {
        let ew = w.exp();
        let f = w * ew - z;
        let wp1 = w + 1.0;
        let step = f / (ew * wp1 - (w + 2.0) * f / (2.0 * wp1));
        w -= step;
        if step.abs() <= 1e-15 * (1.0 + w.abs()) {
            break;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverts_w_exp_w() {
        for &z in &[
            1e-9, 0.1, 1.0, 2.5, 3.0, 12.0, 48.0, 1e3, 1e6, 1.3e10, 1e300,
        ] {
            let w = lambert_w0(z);
            let back = w * w.exp();
            assert!(((back - z) / z).abs() < 1e-12, "z {z}: w {w}, w e^w {back}");
        }
        assert_eq!(lambert_w0(0.0), 0.0);
        assert!((lambert_w0(std::f64::consts::E) - 1.0).abs() < 1e-14);
        assert!(lambert_w0(-1.0).is_nan());
    }
}
