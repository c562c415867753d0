//! Helpers for quantpipe multi-node tests.
