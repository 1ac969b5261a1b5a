//! The network devices XDP attaches to, as seen from the calling process's
//! network namespace.

use std::ffi::c_char;

/// Drivers whose devices have native XDP (`ndo_bpf`), by ethtool driver name.
const NATIVE_DRIVERS: &[&str] = &[
    "veth",
    "tun",
    "virtio_net",
    "netdevsim",
    "ixgbe",
    "ixgbevf",
    "i40e",
    "ice",
    "igb",
    "igc",
    "mlx4_en",
    "mlx5_core",
    "bnxt_en",
    "nfp",
    "ena",
    "qede",
    "sfc",
    "thunder-nicvf",
    "hv_netvsc",
    "vif",
    "dpaa2-eth",
    "mvneta",
    "mvpp2",
    "stmmaceth",
    "fec",
    "gve",
    "bond",
];

/// `ETHTOOL_GDRVINFO`.
const ETHTOOL_GDRVINFO: u32 = 3;
/// sizeof(struct ethtool_drvinfo).
const DRVINFO_SIZE: usize = 196;

/// The name of interface `ifindex`, None if there is none.
pub fn ifname(ifindex: u32) -> Option<String> {
    if ifindex == 0 {
        return None;
    }
    let mut buf = [0 as c_char; libc::IF_NAMESIZE];
    // SAFETY: buf holds IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// The ethtool driver name of interface `name`, if it says one.
fn driver(name: &str) -> Option<String> {
    let mut info = [0u8; DRVINFO_SIZE];
    info[..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IF_NAMESIZE - 1))
    {
        *d = s as c_char;
    }
    ifr.ifr_ifru.ifru_data = info.as_mut_ptr() as *mut c_char;
    // SAFETY: plain socket creation; the descriptor is closed below.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return None;
    }
    // SAFETY: ifr names the interface and points at a drvinfo buffer of the
    // kernel's size, alive across the call.
    let r = unsafe { libc::ioctl(s, libc::SIOCETHTOOL, &mut ifr) };
    // SAFETY: s is ours.
    unsafe { libc::close(s) };
    if r != 0 {
        return None;
    }
    let d = &info[4..36];
    let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
    Some(String::from_utf8_lossy(&d[..end]).into_owned())
}

/// Whether interface `ifindex` has native XDP (its driver has `ndo_bpf`);
/// None if there is no such interface.
pub fn native_xdp(ifindex: u32) -> Option<bool> {
    let name = ifname(ifindex)?;
    Some(driver(&name).is_some_and(|d| NATIVE_DRIVERS.contains(&d.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_no_native_xdp() {
        assert_eq!(native_xdp(1), Some(false));
        assert_eq!(ifname(1).as_deref(), Some("lo"));
        assert_eq!(native_xdp(0), None);
        assert_eq!(native_xdp(0x7fff_fff0), None);
    }
}
