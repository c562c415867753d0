//! What the client makes of a result message and of a plan announcement, as plain functions:
//! a result is taken, dropped (and why), or fails the run; a newer plan is switched to unless
//! it cut microbatches of another size.

use super::retry::{AfterFailure, Resends};
use crate::runtime::inflight::{InFlight, Verdict};
use anyhow::{bail, Result};
use quantpipe_messages::{Output, PlanInfo};

/// Where a result goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Accept,
    /// Another run's, or a sequence number this run never sent.
    Foreign,
    /// Late traffic (or a failure) of a replaced plan: its microbatches were sent again under
    /// the current epoch.
    Stale,
    Duplicate,
    /// A retryable failure of a pending microbatch: send it once more.
    SendAgain,
}

/// Sorts `out` for run `run`, which cut `microbatches` microbatches, against the book of what
/// is in flight (which it updates on acceptance). A failure reported by a stage under the
/// current plan fails the run, unless it is retryable and the microbatch was not sent again
/// after a failure yet ([`Resends`]): then it is sent once more.
pub fn take_result(
    out: &Output,
    run: u64,
    microbatches: usize,
    book: &mut InFlight,
    resends: &mut Resends,
) -> Result<Taken> {
    if out.run != run {
        return Ok(Taken::Foreign);
    }
    if out.epoch != book.epoch() {
        return Ok(Taken::Stale);
    }
    if let Some(err) = &out.error {
        if out.retryable && !book.pending().contains(&out.seq) {
            // Already answered, or never sent: nothing to send again.
            return Ok(Taken::Duplicate);
        }
        return match resends.after_failure(out.seq, out.retryable) {
            AfterFailure::SendAgain => Ok(Taken::SendAgain),
            AfterFailure::Fail if out.retryable => bail!(
                "microbatch {} failed in the pipeline again after it was sent once more: {err}",
                out.seq
            ),
            AfterFailure::Fail => bail!("microbatch {} failed in the pipeline: {err}", out.seq),
        };
    }
    if out.seq >= microbatches as u64 {
        return Ok(Taken::Foreign);
    }
    Ok(match book.result(out.seq, out.epoch) {
        Verdict::Accept => {
            resends.answered(out.seq);
            Taken::Accept
        }
        Verdict::Duplicate => Taken::Duplicate,
        Verdict::StaleEpoch => Taken::Stale,
        Verdict::Unknown => Taken::Foreign,
    })
}

/// Checks that a result holds one row per item of its microbatch (`want` items).
pub fn check_rows(out: &Output, want: u64) -> Result<()> {
    if out.shape.len() != 2
        || out.shape[0] != want
        || out.values.len() as u64 != want * out.shape[1]
    {
        bail!(
            "result {} has shape {:?} for {want} items",
            out.seq,
            out.shape
        );
    }
    Ok(())
}

/// Whether a run cut for `current` switches to the announced plan `newer`: only to a newer
/// epoch, and never to one with another microbatch size (the input is already cut).
pub fn switch_to(current: &PlanInfo, running_epoch: u64, newer: &PlanInfo) -> Result<bool> {
    if newer.epoch <= running_epoch {
        return Ok(false);
    }
    if newer.ubatch != current.ubatch {
        bail!(
            "plan epoch {} uses microbatches of {}, this run cut its input in {}",
            newer.epoch,
            newer.ubatch,
            current.ubatch
        );
    }
    Ok(true)
}

/// The rows of every result, in sequence order (`d` values each).
pub fn rows(outputs: Vec<Output>) -> Vec<Vec<f32>> {
    outputs
        .into_iter()
        .flat_map(|o| {
            let d = o.shape[1] as usize;
            o.values
                .chunks(d.max(1))
                .map(|r| r.to_vec())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(run: u64, seq: u64, epoch: u64) -> Output {
        Output {
            run,
            seq,
            epoch,
            shape: vec![2, 3],
            values: vec![0.0; 6],
            error: None,
            retryable: false,
        }
    }

    fn plan(epoch: u64, ubatch: usize) -> PlanInfo {
        PlanInfo {
            epoch,
            model: "m".into(),
            ubatch,
            source: "planner".into(),
            stages: vec![],
            predicted_items_per_s: 0.0,
        }
    }

    #[test]
    fn a_result_of_the_running_plan_is_accepted_once() {
        let mut book = InFlight::new(1);
        book.sent(0);
        assert_eq!(
            take_result(&out(7, 0, 1), 7, 4, &mut book, &mut Resends::default()).unwrap(),
            Taken::Accept
        );
        assert_eq!(
            take_result(&out(7, 0, 1), 7, 4, &mut book, &mut Resends::default()).unwrap(),
            Taken::Duplicate
        );
    }

    #[test]
    fn a_microbatch_sent_twice_under_one_epoch_is_accepted_once() {
        // Sent again unanswered past its bound: the first copy may still answer.
        let mut book = InFlight::new(1);
        book.sent(0);
        book.sent(0);
        assert_eq!(book.in_flight(), 1);
        let mut resends = Resends::default();
        assert_eq!(
            take_result(&out(7, 0, 1), 7, 4, &mut book, &mut resends).unwrap(),
            Taken::Accept
        );
        assert_eq!(
            take_result(&out(7, 0, 1), 7, 4, &mut book, &mut resends).unwrap(),
            Taken::Duplicate
        );
        assert_eq!(book.in_flight(), 0);
    }

    #[test]
    fn results_of_other_runs_or_unsent_sequence_numbers_are_foreign() {
        let mut book = InFlight::new(1);
        book.sent(0);
        assert_eq!(
            take_result(&out(8, 0, 1), 7, 4, &mut book, &mut Resends::default()).unwrap(),
            Taken::Foreign
        );
        assert_eq!(
            take_result(&out(7, 9, 1), 7, 4, &mut book, &mut Resends::default()).unwrap(),
            Taken::Foreign
        );
        assert_eq!(
            take_result(&out(7, 2, 1), 7, 4, &mut book, &mut Resends::default()).unwrap(),
            Taken::Foreign
        );
    }

    #[test]
    fn a_result_of_a_replaced_plan_is_stale_even_when_it_reports_a_failure() {
        let mut book = InFlight::new(1);
        book.sent(0);
        book.switch_epoch(2);
        let mut failed = out(7, 0, 1);
        failed.error = Some("stage died".into());
        assert_eq!(
            take_result(&failed, 7, 4, &mut book, &mut Resends::default()).unwrap(),
            Taken::Stale
        );
    }

    #[test]
    fn a_failure_under_the_running_plan_fails_the_run() {
        let mut book = InFlight::new(1);
        book.sent(0);
        let mut failed = out(7, 0, 1);
        failed.error = Some("stage died".into());
        let e = take_result(&failed, 7, 4, &mut book, &mut Resends::default()).unwrap_err();
        assert!(e.to_string().contains("stage died"), "{e}");
    }

    #[test]
    fn a_retryable_failure_is_sent_again_once_then_fails_the_run() {
        let mut book = InFlight::new(1);
        let mut resends = Resends::default();
        book.sent(0);
        let mut failed = out(7, 0, 1);
        failed.error = Some("stage 1: forward worker panicked".into());
        failed.retryable = true;
        assert_eq!(
            take_result(&failed, 7, 4, &mut book, &mut resends).unwrap(),
            Taken::SendAgain
        );
        let e = take_result(&failed, 7, 4, &mut book, &mut resends).unwrap_err();
        assert!(
            e.to_string().contains("again after it was sent once more"),
            "{e}"
        );
    }

    #[test]
    fn a_retryable_failure_of_an_answered_microbatch_is_a_duplicate() {
        let mut book = InFlight::new(1);
        let mut resends = Resends::default();
        book.sent(0);
        take_result(&out(7, 0, 1), 7, 4, &mut book, &mut resends).unwrap();
        let mut failed = out(7, 0, 1);
        failed.error = Some("stage 1: forward worker panicked".into());
        failed.retryable = true;
        assert_eq!(
            take_result(&failed, 7, 4, &mut book, &mut resends).unwrap(),
            Taken::Duplicate
        );
    }

    #[test]
    fn rows_must_match_the_items_of_the_microbatch() {
        assert!(check_rows(&out(7, 0, 1), 2).is_ok());
        assert!(check_rows(&out(7, 0, 1), 3).is_err());
        let mut short = out(7, 0, 1);
        short.values.pop();
        assert!(check_rows(&short, 2).is_err());
    }

    #[test]
    fn only_a_newer_plan_with_the_same_microbatch_size_is_switched_to() {
        let current = plan(3, 8);
        assert!(!switch_to(&current, 3, &plan(3, 8)).unwrap());
        assert!(!switch_to(&current, 4, &plan(4, 8)).unwrap());
        assert!(switch_to(&current, 3, &plan(4, 8)).unwrap());
        assert!(switch_to(&current, 3, &plan(5, 4)).is_err());
    }

    #[test]
    fn rows_come_out_in_the_order_given_split_by_width() {
        let mut a = out(7, 0, 1);
        a.values = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(
            rows(vec![a]),
            vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]
        );
    }
}
