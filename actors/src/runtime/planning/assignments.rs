//! What each stage of a plan is told: its units, its place in the pipeline and where its output
//! goes.

use quantpipe_messages::{Assignment, NextHop, PlanInfo};

/// Each stage's node with its assignment, in stage order: stage `i` sends to stage `i + 1`, the
/// last one to the client.
pub fn assignments(plan: &PlanInfo) -> Vec<(String, Assignment)> {
    let n = plan.stages.len() as u32;
    plan.stages
        .iter()
        .zip(0u32..)
        .map(|(s, i)| {
            let a = Assignment {
                epoch: plan.epoch,
                model: plan.model.clone(),
                stage: i,
                stages: n,
                l: s.l,
                r: s.r,
                next: if i + 1 == n {
                    NextHop::Client
                } else {
                    NextHop::Stage(i + 1)
                },
                out_bits: s.out_bits,
                target_items_per_s: plan.predicted_items_per_s,
                weights: None,
            };
            (s.node.clone(), a)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_messages::PlanStage;

    fn stage(node: &str, l: usize, r: usize) -> PlanStage {
        PlanStage {
            node: node.into(),
            l,
            r,
            out_bits: 8,
            compute_s: 0.0,
            transfer_s: 0.0,
        }
    }

    #[test]
    fn each_stage_sends_to_the_next_and_the_last_to_the_client() {
        let plan = PlanInfo {
            epoch: 42,
            model: "m".into(),
            ubatch: 4,
            source: "planner".into(),
            stages: vec![stage("a", 1, 3), stage("b", 4, 6), stage("c", 7, 8)],
            predicted_items_per_s: 12.5,
        };
        let a = assignments(&plan);
        let nodes: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(nodes, ["a", "b", "c"]);
        let next: Vec<NextHop> = a.iter().map(|(_, x)| x.next.clone()).collect();
        assert_eq!(
            next,
            [NextHop::Stage(1), NextHop::Stage(2), NextHop::Client]
        );
        let (_, b) = &a[1];
        assert_eq!((b.stage, b.stages, b.l, b.r, b.epoch), (1, 3, 4, 6, 42));
        assert_eq!((b.out_bits, b.target_items_per_s), (8, 12.5));
    }
}
