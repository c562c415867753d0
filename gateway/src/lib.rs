//! The HTTP gateway of a quantpipe fleet.
