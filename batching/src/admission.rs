//! Whether a request may enter the queue: all of its items or none, within the capacity of
//! items admitted and not answered yet; a refusal says when to try again.

use std::time::Duration;

/// Why a request was not admitted (nothing of it was queued).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The queue holds too many items now; this many should have been answered by then.
    Full { retry_after: Duration },
    /// The request alone holds more items than the queue ever admits.
    TooLarge { capacity: usize },
    /// A request of no items.
    Empty,
}

/// What a refused caller is told to wait when no service rate was measured yet.
pub const RETRY_WITHOUT_RATE: Duration = Duration::from_secs(1);
/// Bounds of a Retry-After estimate: never "at once", never absurdly far.
pub const RETRY_MIN: Duration = Duration::from_millis(10);
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// Admits a request of `request` items when `outstanding` items (admitted, not answered) leave
/// room for all of them within `capacity`; `items_per_s` is the measured service rate.
pub fn admit(
    outstanding: usize,
    request: usize,
    capacity: usize,
    items_per_s: Option<f64>,
) -> Result<(), Refusal> {
    if request == 0 {
        return Err(Refusal::Empty);
    }
    if request > capacity {
        return Err(Refusal::TooLarge { capacity });
    }
    let excess = (outstanding + request).saturating_sub(capacity);
    if excess == 0 {
        return Ok(());
    }
    Err(Refusal::Full {
        retry_after: retry_after(excess, items_per_s),
    })
}

/// How long until `excess` items are answered at the measured rate.
pub fn retry_after(excess: usize, items_per_s: Option<f64>) -> Duration {
    match items_per_s {
        Some(rate) if rate.is_finite() && rate > 0.0 => {
            Duration::from_secs_f64((excess as f64 / rate).min(RETRY_MAX.as_secs_f64()))
                .clamp(RETRY_MIN, RETRY_MAX)
        }
        _ => RETRY_WITHOUT_RATE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_that_fits_is_admitted() {
        assert_eq!(admit(6, 2, 8, None), Ok(()));
    }

    #[test]
    fn a_request_that_does_not_fit_is_refused_whole() {
        // Six items of room would take three of the four; none is taken.
        assert!(matches!(
            admit(5, 4, 8, Some(10.0)),
            Err(Refusal::Full { .. })
        ));
    }

    #[test]
    fn retry_after_is_the_excess_over_the_measured_rate() {
        assert_eq!(
            admit(8, 2, 8, Some(4.0)),
            Err(Refusal::Full {
                retry_after: Duration::from_millis(500)
            })
        );
        assert_eq!(retry_after(3, None), RETRY_WITHOUT_RATE);
        assert_eq!(retry_after(1, Some(1e9)), RETRY_MIN);
        assert_eq!(retry_after(1_000_000, Some(1.0)), RETRY_MAX);
    }

    #[test]
    fn a_request_larger_than_the_queue_and_an_empty_one_are_refused_for_what_they_are() {
        assert_eq!(admit(0, 9, 8, None), Err(Refusal::TooLarge { capacity: 8 }));
        assert_eq!(admit(0, 0, 8, None), Err(Refusal::Empty));
    }
}
