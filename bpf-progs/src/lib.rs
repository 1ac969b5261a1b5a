//! bpf-progs
