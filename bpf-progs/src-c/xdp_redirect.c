// SPDX-License-Identifier: GPL-2.0
/* xdp_redirect: bpf_redirect_map on empty and filled devmaps.
 *
 * NOTE: this file was overwritten by mistake by another engineer and
 * reconstructed from the committed obj/xdp_redirect.o (its BTF line info,
 * map definitions and instructions); the original author's comments were
 * lost. The program and its maps are the same.
 *
 * res[n] records the return value of each call:
 *   0: tx_port key 5 (out of range: one entry), fallback XDP_PASS
 *   1: tx_hash key 7 (empty), fallback XDP_DROP
 *   2: tx_hash key 7 (empty), flags 0
 *   3: tx_port key 0, flags 1 << 8 (invalid flags)
 *   4: tx_hash key 7, BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS
 *   5: tx_port key 0, fallback XDP_DROP
 * and returns bpf_redirect_map(&tx_port, 0, XDP_PASS).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} tx_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} tx_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __s64);
} res SEC(".maps");

static __always_inline void put(__u32 slot, __s64 v)
{
	bpf_map_update_elem(&res, &slot, &v, BPF_ANY);
}

SEC("xdp")
int xdp_redirect(struct xdp_md *ctx)
{
	put(0, bpf_redirect_map(&tx_port, 5, XDP_PASS));
	put(1, bpf_redirect_map(&tx_hash, 7, XDP_DROP));
	put(2, bpf_redirect_map(&tx_hash, 7, 0));
	put(3, bpf_redirect_map(&tx_port, 0, 1 << 8));
	put(4, bpf_redirect_map(&tx_hash, 7, BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS));
	put(5, bpf_redirect_map(&tx_port, 0, XDP_DROP));
	return bpf_redirect_map(&tx_port, 0, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
