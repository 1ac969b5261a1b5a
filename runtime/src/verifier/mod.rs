//! The analysis that proves programs' memory accesses and helper arguments safe, as
//! the kernel's verifier does (kernel/bpf/verifier.c): register and stack states with
//! types, scalar bounds, path-sensitive exploration with state pruning.
//!
//! - `scalar.rs`: the scalar domain (tnum plus signed/unsigned 32- and 64-bit bounds).

pub mod scalar;
