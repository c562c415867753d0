//! The fleet client's answers as gateway [`Failure`]s: a refused submission, and the first
//! item of a request that got no output.

use crate::failure::Failure;
use quantpipe_client::{ItemError, ItemOutput, ItemResult, SubmitError};

/// A submission the client refused.
pub fn refused(e: SubmitError) -> Failure {
    match e {
        SubmitError::BadItem { .. } => Failure::bad(e.to_string()),
        SubmitError::Full { retry_after } => Failure::Full {
            message: e.to_string(),
            retry_after,
        },
        SubmitError::Unavailable(_) => Failure::Unavailable(e.to_string()),
    }
}

/// Every item's output in order, or the failure of the request: a request is answered whole,
/// so one item without output fails it, naming that item.
pub fn outputs(results: Vec<ItemResult>) -> Result<Vec<ItemOutput>, Failure> {
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.map_err(|e| match e {
                ItemError::Deadline => Failure::Deadline(format!(
                    "item {i}: the request's deadline passed before it was answered"
                )),
                ItemError::Pipeline(m) => Failure::Internal(format!("item {i}: pipeline: {m}")),
                ItemError::Closed => {
                    Failure::Unavailable(format!("item {i}: the gateway's fleet client closed"))
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn refusals_keep_their_status_and_retry_after() {
        let bad = refused(SubmitError::BadItem {
            index: 2,
            reason: "130 tokens, at most 128".into(),
        });
        assert_eq!(bad.status(), 400);
        assert!(bad.to_string().contains("item 2"), "{bad}");
        let full = refused(SubmitError::Full {
            retry_after: Duration::from_millis(2500),
        });
        assert_eq!((full.status(), full.retry_after_s()), (429, Some(3)));
        assert_eq!(
            refused(SubmitError::Unavailable("no plan".into())).status(),
            503
        );
    }

    #[test]
    fn one_item_without_output_fails_the_request_naming_it() {
        let ok = || {
            Ok(ItemOutput {
                values: vec![1.0],
                tokens: 3,
            })
        };
        let f = outputs(vec![ok(), Err(ItemError::Deadline)]).unwrap_err();
        assert_eq!(f.status(), 504);
        assert!(f.to_string().contains("item 1"), "{f}");
        assert_eq!(
            outputs(vec![Err(ItemError::Pipeline("oom".into()))])
                .unwrap_err()
                .status(),
            500
        );
        assert_eq!(
            outputs(vec![Err(ItemError::Closed)]).unwrap_err().status(),
            503
        );
        assert_eq!(outputs(vec![ok(), ok()]).unwrap().len(), 2);
    }
}
