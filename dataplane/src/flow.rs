//! The flow hash that picks a frame's worker, so that every frame of a flow runs on
//! the same worker (and so sees the same per-CPU map slots), in arrival order.
//!
//! The flow is the 5-tuple for IPv4 and IPv6 (addresses, protocol, and the ports of
//! TCP, UDP, UDP-Lite, SCTP and DCCP), below up to two VLAN tags. IPv4 fragments
//! after the first carry no ports, so every fragment hashes on addresses and protocol
//! alone. Other frames hash on their MAC addresses and EtherType. The hash is not
//! symmetric: the two directions of a connection may land on different workers.

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

/// Transport protocols whose first four bytes are the source and destination ports.
fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 33 | 132 | 136)
}

/// FNV-1a over the bytes, then a finalising mix so that the low bits spread.
fn hash_bytes(parts: &[&[u8]]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h as u32
}

fn be16(frame: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?))
}

/// The flow hash of an Ethernet frame (any length: a runt hashes on what it has).
pub fn flow_hash(frame: &[u8]) -> u32 {
    let fallback = || hash_bytes(&[frame.get(..14).unwrap_or(frame)]);
    let Some(mut ethertype) = be16(frame, 12) else {
        return fallback();
    };
    let mut off = 14;
    for _ in 0..2 {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        let Some(inner) = be16(frame, off + 2) else {
            return fallback();
        };
        ethertype = inner;
        off += 4;
    }
    let l3 = &frame[off.min(frame.len())..];
    match ethertype {
        ETH_P_IP => {
            let (Some(&vihl), Some(addrs)) = (l3.first(), l3.get(12..20)) else {
                return fallback();
            };
            let ihl = usize::from(vihl & 0xf) * 4;
            let proto = l3[9];
            let frag_off = be16(l3, 6).unwrap_or(0) & 0x1fff;
            let ports = if has_ports(proto) && frag_off == 0 && ihl >= 20 {
                l3.get(ihl..ihl + 4).unwrap_or(&[])
            } else {
                &[]
            };
            hash_bytes(&[&[4, proto], addrs, ports])
        }
        ETH_P_IPV6 => {
            let Some(addrs) = l3.get(8..40) else {
                return fallback();
            };
            let proto = l3[6];
            let ports = if has_ports(proto) {
                l3.get(40..44).unwrap_or(&[])
            } else {
                &[]
            };
            hash_bytes(&[&[6, proto], addrs, ports])
        }
        _ => fallback(),
    }
}

/// The worker (of `workers`) that runs frames of this flow.
pub fn worker_for(frame: &[u8], workers: u32) -> u32 {
    if workers <= 1 {
        return 0;
    }
    // Multiply-shift: uniform over the workers without a division.
    ((u64::from(flow_hash(frame)) * u64::from(workers)) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 + UDP/TCP header with the given tuple.
    fn v4(proto: u8, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, frag: u16) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[6..].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f.extend(ETH_P_IP.to_be_bytes());
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[6..8].copy_from_slice(&frag.to_be_bytes());
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        f.extend(ip);
        f.extend(sport.to_be_bytes());
        f.extend(dport.to_be_bytes());
        f.extend([0u8; 30]);
        f
    }

    #[test]
    fn a_flow_keeps_its_hash_and_flows_spread() {
        let a = v4(17, [10, 0, 0, 1], [10, 0, 0, 2], 1000, 53, 0);
        let mut a2 = a.clone();
        a2[60] = 0xff; // payload differs, same flow
        a2.extend([1, 2, 3]);
        assert_eq!(flow_hash(&a), flow_hash(&a2));
        // Another port, address or protocol is another flow.
        let b = v4(17, [10, 0, 0, 1], [10, 0, 0, 2], 1001, 53, 0);
        let c = v4(6, [10, 0, 0, 1], [10, 0, 0, 2], 1000, 53, 0);
        let d = v4(17, [10, 0, 0, 3], [10, 0, 0, 2], 1000, 53, 0);
        assert_ne!(flow_hash(&a), flow_hash(&b));
        assert_ne!(flow_hash(&a), flow_hash(&c));
        assert_ne!(flow_hash(&a), flow_hash(&d));
        // A later fragment has no ports: it hashes as the tuple without them.
        let f1 = v4(17, [10, 0, 0, 1], [10, 0, 0, 2], 1000, 53, 100);
        let f2 = v4(17, [10, 0, 0, 1], [10, 0, 0, 2], 7, 8, 200);
        assert_eq!(flow_hash(&f1), flow_hash(&f2));
        // 256 flows over 2 workers: both get a fair share.
        let mut per = [0u32; 2];
        for p in 0..256u16 {
            let f = v4(6, [10, 0, 0, 1], [10, 0, 0, 2], 40000 + p, 80, 0);
            per[worker_for(&f, 2) as usize] += 1;
        }
        assert!(per[0] > 96 && per[1] > 96, "{per:?}");
        assert_eq!(worker_for(&a, 1), 0);
    }

    #[test]
    fn vlan_tags_are_looked_through_and_runts_hash() {
        let plain = v4(17, [10, 0, 0, 1], [10, 0, 0, 2], 1000, 53, 0);
        let mut tagged = plain[..12].to_vec();
        tagged.extend([0x81, 0x00, 0x00, 0x05]);
        tagged.extend(&plain[12..]);
        assert_eq!(flow_hash(&plain), flow_hash(&tagged));
        // Frames too short for their headers still hash (on what they hold).
        for n in 0..40 {
            let _ = flow_hash(&plain[..n]);
            let _ = flow_hash(&tagged[..n]);
        }
    }
}
