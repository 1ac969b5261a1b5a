#!/usr/bin/env python3
"""Writes example.pcap, a small capture for `xdp-runner replay` (standard library only).

    python3 gen_capture.py [OUT]

Classic pcap, Ethernet link type, microsecond timestamps one millisecond apart.
48 frames: the frames of gen.py (ICMP, UDP, TCP, IPv6, VLAN, tunnels, the short
runt) with UDP/TCP source ports varied to make several flows, a few padded to
larger sizes, and one 4000-byte frame, longer than a frame buffer holds (it does
not run: `replay` counts it as oversize).
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen  # noqa: E402


def with_sport(frame: bytes, port: int) -> bytes:
    """The frame with its IPv4 TCP/UDP source port replaced (checksums left as they are)."""
    if frame[12:14] != b"\x08\x00" or frame[14] != 0x45 or frame[23] not in (6, 17):
        return frame
    return frame[:34] + struct.pack("!H", port) + frame[36:]


def example_frames() -> list:
    base = gen.frames()
    names = ["icmp.bin", "udp.bin", "tcp_syn.bin", "ipv6.bin", "ipv6_icmp.bin",
             "vlan_udp.bin", "ipv4_opts.bin", "blocked_port.bin", "ipip.bin", "gue.bin"]
    out = []
    for i in range(4):
        for name in names:
            frame = with_sport(base[name], 41000 + i)
            if i == 3:
                frame = frame + bytes(200 * (len(out) % 3))
            out.append(frame)
    out.append(base["short.bin"])
    out.append(base["udp.bin"] + bytes(4000 - len(base["udp.bin"])))
    out += [base["icmp.bin"], base["udp.bin"], base["tcp_syn.bin"], base["pkt_v4.bin"],
            base["pkt_v6.bin"], base["vlan_q.bin"]]
    return out


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "example.pcap")
    frames = example_frames()
    with open(path, "wb") as f:
        # magic, version 2.4, thiszone, sigfigs, snaplen, LINKTYPE_ETHERNET
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            ts = 1_700_000_000_000_000 + i * 1000
            f.write(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(frame), len(frame)))
            f.write(frame)
    print(f"{path}: {len(frames)} frames")


if __name__ == "__main__":
    main()
