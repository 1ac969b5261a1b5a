//! libxdpshim.so: under `LD_PRELOAD`, bpf(2) and the calls loaders make on its
//! descriptors and on bpffs paths are answered from the runtime's
//! shared-memory store, so bpftool and libbpf loaders run unchanged and
//! unprivileged, and create no kernel object.
//!
//! Interposed: `syscall` (for `__NR_bpf`; everything else passes through),
//! `mmap`/`mmap64` of map descriptors, `readlink` of `/proc/self/fd/N`,
//! `open`/`open64`/`openat`/`fopen`/`fopen64` of `/proc/self/fdinfo/N`, and
//! the path calls coreutils and loaders make on `/sys/fs/bpf/...` (the
//! virtual bpffs, see [`vfs`]): `statfs`, `stat`/`lstat`/`fstatat`/`statx`/
//! `fstat`, `access`/`faccessat`, `open`/`openat`/`fopen` (and the fortified
//! `__open_2` family), `opendir`/`fdopendir`/`readdir`/`closedir`/`dirfd`,
//! `nftw`, `rename`/`renameat`/`renameat2`, `unlink`/`unlinkat`, `mkdir`/`mkdirat`/
//! `rmdir`, `readlink`/`readlinkat`; links, `chmod`, `chown`, `utimensat`,
//! `truncate`, `mknod` there are refused. None of them reaches the host's
//! bpffs. Every entry
//! point catches panics and fails with an errno instead. Pointers from the
//! application are only ever used through [`user`]'s checked copies (EFAULT,
//! as the kernel, never a signal), and records read from the store are
//! checked by [`checked`] before they are answered (EUCLEAN if corrupt).
//!
//! Environment: `XDPSHIM_STORE` names the store (default `xdp-runtime`),
//! `XDPSHIM_LOG=1` logs unsupported requests once each on stderr.
//!
//! Modules holding unsafe code: `real` (calls through dlsym), `user`
//! (process_vm_readv/writev), `fds` (memfds), `interpose` (the C ABI entry
//! points), `vfs` (plain-data libc structs).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod bpf;
pub mod checked;
pub mod error;
pub mod fds;
pub mod freplace;
pub mod gc;
pub mod info;
pub mod interpose;
pub mod mapbtf;
pub mod netlink;
pub mod progload;
pub mod real;
pub mod state;
pub mod testrun;
pub mod user;
pub mod vfs;

/// Sets the calling thread's errno.
pub fn set_errno(e: i32) {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}
