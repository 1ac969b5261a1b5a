/* SPDX-License-Identifier: GPL-2.0 */
/* The subset of vmlinux.h that xdp_core.c needs, for builds where
 * ../build/vmlinux.h has not been generated (`make vmlinux` does it; build.rs
 * does not). Every record carries preserve_access_index, as in vmlinux.h,
 * so field accesses become CO-RE relocations against the kernel's BTF,
 * exactly as with the generated header.
 */
#ifndef XDP_CORE_TYPES_H
#define XDP_CORE_TYPES_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef __u16 __sum16;

enum bpf_map_type {
	BPF_MAP_TYPE_ARRAY = 2,
};

enum xdp_action {
	XDP_ABORTED = 0,
	XDP_DROP = 1,
	XDP_PASS = 2,
	XDP_TX = 3,
	XDP_REDIRECT = 4,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

struct ethhdr {
	unsigned char h_dest[6];
	unsigned char h_source[6];
	__be16 h_proto;
};

struct iphdr {
	__u8 ihl : 4;
	__u8 version : 4;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__sum16 check;
	__be32 saddr;
	__be32 daddr;
};

#pragma clang attribute pop

#endif
