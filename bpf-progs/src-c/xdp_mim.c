// SPDX-License-Identifier: GPL-2.0
/* Maps of maps and prog_arrays with initial slots, as libbpf fills them from a
 * BTF map definition's `.values = { [i] = &x }` (relocations in .rel.maps):
 *
 * - by_proto, an array_of_maps: slot 0 ICMP, 1 TCP, 3 UDP; slot 2 left empty;
 * - by_l4, a hash_of_maps keyed by IP protocol: TCP (6) and UDP (17);
 * - mim_jmp, a prog_array: slot 0 is xdp_mim; slot 1 left empty.
 *
 * xdp_mim picks an inner array by protocol (IPv6 takes the empty slot, other
 * EtherTypes an index past max_entries: both look up NULL) and adds the frame
 * length to entry ttl & 3; then it picks an inner hash by protocol and counts
 * the destination address in it, inserting new flows. Verdict: no inner array
 * DROP, an array but no hash PASS, both TX.
 * xdp_mim_jump tail-calls slot 1 (empty: DROP) for IPv6, else slot 0.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* The inner maps come before the outer ones: libbpf 1.1 fills an outer map's
 * slots right after creating it, so the maps they name must exist already. */
struct inner_array {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
};

struct inner_hash {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
};

struct inner_array arr_icmp SEC(".maps");
struct inner_array arr_tcp SEC(".maps");
struct inner_array arr_udp SEC(".maps");
struct inner_hash flows_tcp SEC(".maps");
struct inner_hash flows_udp SEC(".maps");

enum { SLOT_ICMP = 0, SLOT_TCP = 1, SLOT_EMPTY = 2, SLOT_UDP = 3, SLOT_OUT_OF_RANGE = 9 };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner_array);
} by_proto SEC(".maps") = {
	.values = {
		[SLOT_ICMP] = &arr_icmp,
		[SLOT_TCP] = &arr_tcp,
		[SLOT_UDP] = &arr_udp,
	},
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 8);
	__type(key, __u32);
	__array(values, struct inner_hash);
} by_l4 SEC(".maps") = {
	.values = {
		[IPPROTO_TCP] = &flows_tcp,
		[IPPROTO_UDP] = &flows_udp,
	},
};

enum { STAT_PACKETS = 0, STAT_ARRAY_MISS = 1, STAT_HASH_MISS = 2, STAT_NEW_FLOW = 3, NSTATS = 4 };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NSTATS);
	__type(key, __u32);
	__type(value, __u64);
} mim_stats SEC(".maps");

int xdp_mim(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, int (void *));
} mim_jmp SEC(".maps") = {
	.values = {
		[0] = (void *)&xdp_mim,
	},
};

static __always_inline void bump(__u32 k)
{
	__u64 *v = bpf_map_lookup_elem(&mim_stats, &k);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("xdp")
int xdp_mim(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	__u32 proto = 0xff, slot = SLOT_OUT_OF_RANGE, key, dst;
	void *arr, *flows;
	__u64 *v;

	bump(STAT_PACKETS);
	if ((void *)(ip + 1) > data_end)
		return XDP_ABORTED;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		slot = SLOT_EMPTY;
	} else if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		proto = ip->protocol;
		if (proto == IPPROTO_ICMP)
			slot = SLOT_ICMP;
		else if (proto == IPPROTO_TCP)
			slot = SLOT_TCP;
		else if (proto == IPPROTO_UDP)
			slot = SLOT_UDP;
		else
			slot = SLOT_EMPTY;
	}

	arr = bpf_map_lookup_elem(&by_proto, &slot);
	if (!arr) {
		bump(STAT_ARRAY_MISS);
		return XDP_DROP;
	}
	key = ip->ttl & 3;
	v = bpf_map_lookup_elem(arr, &key);
	if (v)
		__sync_fetch_and_add(v, (__u64)(data_end - data));

	flows = bpf_map_lookup_elem(&by_l4, &proto);
	if (!flows) {
		bump(STAT_HASH_MISS);
		return XDP_PASS;
	}
	dst = ip->daddr;
	v = bpf_map_lookup_elem(flows, &dst);
	if (v) {
		__sync_fetch_and_add(v, 1);
	} else {
		__u64 one = 1;

		if (bpf_map_update_elem(flows, &dst, &one, BPF_NOEXIST) == 0)
			bump(STAT_NEW_FLOW);
	}
	return XDP_TX;
}

SEC("xdp")
int xdp_mim_jump(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	/* Slot 1 is never filled: the tail call fails and execution goes on. */
	bpf_tail_call(ctx, &mim_jmp, eth->h_proto == bpf_htons(ETH_P_IPV6) ? 1 : 0);
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
