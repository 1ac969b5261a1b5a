//! The data plane: packet sources and sinks, workers.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod afpacket;
pub mod afxdp;
pub mod live_error;
