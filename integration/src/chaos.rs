//! The verdict every chaos test gives on a finished run: each item answered exactly once and
//! every output bitwise equal to single-process inference.

use crate::{minilm_dir, quantpipe_bin, read_outputs, single_process_outputs};
use quantpipe_launcher::netns_fleet::judge::{self, RunFacts};
use quantpipe_launcher::netns_fleet::{NetnsFleet, RunFiles};

/// Judges run `run` of fleet `f` (its inputs and outputs in `files`, microbatches of `ubatch`
/// items) against MiniLM run in one process on the same inputs; panics listing every problem,
/// with the fleet's logs.
pub fn assert_exact_once(
    f: &mut NetnsFleet,
    run: &str,
    files: &RunFiles,
    facts: &RunFacts,
    ubatch: usize,
) {
    let outputs = read_outputs(&files.outputs);
    let reference = single_process_outputs(
        f.procs(),
        &format!("{run}-infer"),
        &quantpipe_bin(),
        &minilm_dir(),
        &files.input,
        ubatch,
    );
    let problems = judge::problems(files.items, facts, &f.log(run), &outputs, &reference);
    assert!(
        problems.is_empty(),
        "{run}: {problems:#?}\nleader:\n{}\n{}",
        f.leader_log(),
        f.logs()
    );
}
