//! Feeds arbitrary bytes to the decoders of the messages between nodes, through the same framing
//! as the tensor decoder: every control message, acknowledgement, stats, output and activation
//! header. Whatever the input, decoding must return Ok or a typed error (never panic), and
//! anything accepted must encode to bytes that decode to the same value
//! (`quantpipe_messages::oracle::check_messages`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use quantpipe_messages::oracle::check_messages;

fuzz_target!(|data: &[u8]| {
    check_messages(data);
});
