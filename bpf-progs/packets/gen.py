#!/usr/bin/env python3
"""Generates the test frames in this directory (standard library only).

    python3 gen.py [OUTDIR]

Every frame is a complete Ethernet frame as a NIC would hand it to XDP (no
FCS). IPv4 header checksums and TCP/UDP/ICMP/ICMPv6 checksums are correct.

  icmp.bin          Eth + IPv4 + ICMP echo request, 56 bytes of payload (98)
  udp.bin           Eth + IPv4 + UDP to port 53, 32 bytes of payload (74)
  tcp_syn.bin       Eth + IPv4 + TCP SYN to port 80 with options (74)
  ipv6.bin          Eth + IPv6 + hop-by-hop header + UDP to port 5353 (86)
  ipv6_icmp.bin     Eth + IPv6 + ICMPv6 echo request (78)
  vlan_udp.bin      Eth + 802.1ad tag 100 + 802.1Q tag 200 + IPv4 + UDP (67)
  ipv4_opts.bin     Eth + IPv4 with IHL 6 (router alert option) + TCP ACK (58)
  bad_ihl.bin       Eth + IPv4 with IHL 15, frame ends after 40 bytes (54)
  short.bin         10 bytes: shorter than an Ethernet header
  blocked_port.bin  Eth + IPv4 + UDP to port 6666 (blocked by the case list) (58)
  ipip.bin          Eth + IPv4 192.168.1.1 -> 192.168.2.7 proto 4 + IPv4 TCP SYN (74)
  gue.bin           Eth + IPv4 + UDP to 6080 + GUE (ctype 4) + IPv4 UDP (92)
  gue_ip6.bin       Eth + IPv4 + UDP to 6080 + GUE (ctype 41) + IPv6 UDP (103)
  vlan_q.bin        Eth + 802.1Q tag (VID 5, PCP 3) + IPv4 UDP (56)
  fib_fwd.bin       Eth + IPv4 UDP 10.0.0.1 -> 10.2.0.5, TTL 64 (60)
  fib_blackhole.bin Eth + IPv4 UDP 10.0.0.1 -> 10.3.0.5, TTL 64 (60)
  pkt_v4.bin        the kernel selftests' pkt_v4 (test_progs.c) (54)
  pkt_v6.bin        the kernel selftests' pkt_v6, the standard IPv6 test packet (74)
"""
import os
import struct
import sys

MAC_A = bytes.fromhex("020000000001")  # sender
MAC_B = bytes.fromhex("020000000002")  # receiver
IP_A = bytes([10, 0, 0, 1])
IP_B = bytes([10, 0, 0, 2])
IP6_A = bytes.fromhex("fd000000000000000000000000000001")
IP6_B = bytes.fromhex("fd000000000000000000000000000002")


def csum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(proto: int, dst=MAC_B, src=MAC_A) -> bytes:
    return dst + src + struct.pack("!H", proto)


def ipv4(proto: int, payload: bytes, options: bytes = b"", ident=0x1234, ttl=64) -> bytes:
    assert len(options) % 4 == 0
    ihl = 5 + len(options) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(payload),
                      ident, 0x4000, ttl, proto, 0, IP_A, IP_B) + options
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def pseudo4(proto: int, length: int) -> bytes:
    return IP_A + IP_B + struct.pack("!BBH", 0, proto, length)


def pseudo6(proto: int, length: int) -> bytes:
    return IP6_A + IP6_B + struct.pack("!I3xB", length, proto)


def udp(sport: int, dport: int, payload: bytes, pseudo) -> bytes:
    length = 8 + len(payload)
    seg = struct.pack("!HHHH", sport, dport, length, 0) + payload
    c = csum(pseudo(17, length) + seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", c) + seg[8:]


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int, options: bytes,
        payload: bytes = b"") -> bytes:
    assert len(options) % 4 == 0
    doff = 5 + len(options) // 4
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags,
                      64240, 0, 0) + options + payload
    c = csum(pseudo4(6, len(seg)) + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def icmp_echo(ident: int, seq: int, payload: bytes) -> bytes:
    msg = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    return msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]


def icmp6_echo(ident: int, seq: int, payload: bytes) -> bytes:
    msg = struct.pack("!BBHHH", 128, 0, 0, ident, seq) + payload
    c = csum(pseudo6(58, len(msg)) + msg)
    return msg[:2] + struct.pack("!H", c) + msg[4:]


def ipv6(nexthdr: int, payload: bytes, hop_limit=64) -> bytes:
    return struct.pack("!IHBB", 6 << 28, len(payload), nexthdr, hop_limit) + IP6_A + IP6_B + payload


def frames() -> dict:
    out = {}
    ping_payload = bytes(range(0x10, 0x10 + 56))  # like ping's 56 data bytes
    out["icmp.bin"] = eth(0x0800) + ipv4(1, icmp_echo(0x0BEE, 1, ping_payload))

    udp_payload = b"xdp-runtime udp test payload 32b"
    assert len(udp_payload) == 32
    out["udp.bin"] = eth(0x0800) + ipv4(17, udp(40000, 53, udp_payload, pseudo4))

    # MSS 1460, SACK permitted, timestamps, NOP, window scale 7: 20 bytes.
    syn_opts = (bytes([2, 4]) + struct.pack("!H", 1460) + bytes([4, 2])
                + bytes([8, 10]) + struct.pack("!II", 0x01020304, 0)
                + bytes([1, 3, 3, 7]))
    out["tcp_syn.bin"] = eth(0x0800) + ipv4(6, tcp(40001, 80, 0x11223344, 0, 0x02, syn_opts))

    # Hop-by-hop (nexthdr UDP, hdrlen 0: 8 bytes, PadN of 4) then UDP.
    u6 = udp(40002, 5353, b"ipv6 over udp!!!", pseudo6)
    hbh = bytes([17, 0, 1, 4, 0, 0, 0, 0])
    out["ipv6.bin"] = eth(0x86DD) + ipv6(0, hbh + u6)

    out["ipv6_icmp.bin"] = eth(0x86DD) + ipv6(58, icmp6_echo(0x0BEE, 1, b"ping6 v6 payload"))

    inner = ipv4(17, udp(40003, 4789, b"vlan tagged frame", pseudo4))
    out["vlan_udp.bin"] = (MAC_B + MAC_A + struct.pack("!HHHHH", 0x88A8, 100, 0x8100, 200, 0x0800)
                           + inner)

    router_alert = bytes([0x94, 0x04, 0x00, 0x00])
    out["ipv4_opts.bin"] = eth(0x0800) + ipv4(
        6, tcp(40004, 443, 1000, 2000, 0x10, b""), options=router_alert)

    # IHL 15 claims a 60-byte header; the frame holds only 40 bytes of IPv4.
    bad = bytearray(ipv4(6, bytes(20)))
    bad[0] = 0x4F
    bad[10:12] = b"\0\0"
    bad[10:12] = struct.pack("!H", csum(bytes(bad[:20])))
    out["bad_ihl.bin"] = eth(0x0800) + bytes(bad)

    out["short.bin"] = MAC_B + MAC_A[:4]

    out["blocked_port.bin"] = eth(0x0800) + ipv4(17, udp(40005, 6666, b"blocked!" * 2, pseudo4))
    out.update(issue5_frames())
    return out


def ipv4_between(src: bytes, dst: bytes, proto: int, payload: bytes, ttl=64) -> bytes:
    """An IPv4 header with DF, id 0, given addresses (no options)."""
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, ttl, proto, 0,
                      src, dst)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def issue5_frames() -> dict:
    """Frames for the issue-5 programs (xdp_lb, xdp_decap, xdp_vlan, xdp_fib,
    xdp_adjust_tail, ...)."""
    out = {}
    lb_src = bytes([192, 168, 1, 1])
    real = bytes([192, 168, 2, 7])
    inner_tcp = ipv4(6, tcp(40001, 80, 0x11223344, 0, 0x02, b""))
    inner_udp = ipv4(17, udp(40000, 53, b"inner udp over gue", pseudo4))
    inner_v6 = ipv6(17, udp(40002, 5353, b"v6 in gue", pseudo6))
    gue4 = bytes([0, 4, 0, 0])   # GUE variant 0, hlen 0, proto_ctype 4 (IPv4)
    gue6 = bytes([0, 41, 0, 0])  # proto_ctype 41 (IPv6)

    def gue(inner: bytes, hdr: bytes) -> bytes:
        seg = struct.pack("!HHHH", 0x8123, 6080, 8 + 4 + len(inner), 0) + hdr + inner
        return ipv4_between(lb_src, real, 17, seg)

    # ipip.bin: Eth + IPv4 (proto 4) + IPv4 TCP SYN (no options) (74)
    out["ipip.bin"] = eth(0x0800) + ipv4_between(lb_src, real, 4, inner_tcp)
    # gue.bin: Eth + IPv4 + UDP to 6080 + GUE (ctype 4) + IPv4 UDP (92)
    out["gue.bin"] = eth(0x0800) + gue(inner_udp, gue4)
    # gue_ip6.bin: Eth + IPv4 + UDP to 6080 + GUE (ctype 41) + IPv6 UDP (103)
    out["gue_ip6.bin"] = eth(0x0800) + gue(inner_v6, gue6)
    # vlan_q.bin: Eth + one 802.1Q tag (VID 5, PCP 3) + IPv4 UDP (56)
    out["vlan_q.bin"] = (MAC_B + MAC_A + struct.pack("!HHH", 0x8100, (3 << 13) | 5, 0x0800)
                         + ipv4(17, udp(40006, 53, b"single tag", pseudo4)))
    # fib_fwd.bin / fib_blackhole.bin: Eth + IPv4 UDP from 10.0.0.1 to
    # 10.2.0.5 / 10.3.0.5, TTL 64 (for xdp_fib's routing tables) (60)
    for name, dst in (("fib_fwd.bin", bytes([10, 2, 0, 5])),
                      ("fib_blackhole.bin", bytes([10, 3, 0, 5]))):
        seg = struct.pack("!HHHH", 40007, 9, 8 + 18, 0) + b"forward this pls!!"
        out[name] = eth(0x0800) + ipv4_between(IP_A, dst, 17, seg)
    # pkt_v4.bin / pkt_v6.bin: the kernel selftests' pkt_v4 and pkt_v6
    # (tools/testing/selftests/bpf/test_progs.c): all zero but for the
    # EtherType, iph.ihl = 5 (IPv4: version 0), protocol / nexthdr TCP,
    # tot_len / payload_len 123 (MAGIC_BYTES), tcp.urg_ptr = 123 in host
    # (little-endian) order and tcp.doff = 5. (54 and 74 bytes)
    tcp_zero = bytearray(20)
    tcp_zero[12] = 5 << 4
    tcp_zero[18:20] = struct.pack("<H", 123)
    v4 = bytearray(20)
    v4[0] = 5
    v4[2:4] = struct.pack("!H", 123)
    v4[9] = 6
    out["pkt_v4.bin"] = bytes(6) + bytes(6) + struct.pack("!H", 0x0800) + bytes(v4) + bytes(tcp_zero)
    v6 = bytearray(40)
    v6[4:6] = struct.pack("!H", 123)
    v6[6] = 6
    out["pkt_v6.bin"] = bytes(6) + bytes(6) + struct.pack("!H", 0x86DD) + bytes(v6) + bytes(tcp_zero)
    # frag_*.bin: multi-buffer frames (the linear part holds 3520 bytes, the rest
    # goes to 4096-byte fragments) for the kernel selftests of xdp_frags.c:
    # frag_9000_N.bin are 9000 zero bytes but the first, N (the shrink case);
    # frag_9001.bin 9001 zero bytes; frag_upd_SIZE_OFF.bin the update-frags frames:
    # zero bytes but a little-endian u32 OFF at the start and 0xaa markers at OFF
    # and OFF + 15 (prog_tests/xdp_adjust_frags.c).
    for n in range(3):
        out[f"frag_9000_{n}.bin"] = bytes([n]) + bytes(8999)
    out["frag_9001.bin"] = bytes(9001)
    for size, off in ((128, 16), (9000, 5000), (9000, 3510), (9000, 7606)):
        f = bytearray(size)
        f[0:4] = struct.pack("<I", off)
        f[off] = 0xAA
        f[off + 15] = 0xAA
        out[f"frag_upd_{size}_{off}.bin"] = bytes(f)
    return out


def main() -> None:
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for name, data in frames().items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
