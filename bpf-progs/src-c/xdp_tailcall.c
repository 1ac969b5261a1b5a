// SPDX-License-Identifier: GPL-2.0
/* A tail-call dispatcher in the style of xdp-tools' multi-program chains: the entry
 * program classifies the frame by EtherType / IP protocol and tail-calls a handler
 * from a prog_array; handlers count, may chain once more, and pick the verdict.
 * An empty slot falls through to the entry program's default. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

enum { SLOT_IPV4 = 0, SLOT_IPV6 = 1, SLOT_UDP = 2, SLOT_TCP = 3, SLOT_EMPTY = 4, NSLOTS = 8 };

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, NSLOTS);
	__type(key, __u32);
	__type(value, __u32);
} jmp_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NSLOTS);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&hits, &slot);
	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("xdp")
int tc_ipv4(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);

	count(SLOT_IPV4);
	if ((void *)(ip + 1) > data_end)
		return XDP_ABORTED;
	if (ip->protocol == IPPROTO_UDP)
		bpf_tail_call(ctx, &jmp_table, SLOT_UDP);
	else if (ip->protocol == IPPROTO_TCP)
		bpf_tail_call(ctx, &jmp_table, SLOT_TCP);
	return XDP_PASS;
}

SEC("xdp")
int tc_ipv6(struct xdp_md *ctx)
{
	count(SLOT_IPV6);
	/* Slot 4 is never filled: the tail call fails and execution continues. */
	bpf_tail_call(ctx, &jmp_table, SLOT_EMPTY);
	return XDP_DROP;
}

SEC("xdp")
int tc_udp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	count(SLOT_UDP);
	if (data + 14 > data_end)
		return XDP_ABORTED;
	/* Mark the frame: the last byte of the source MAC. */
	((__u8 *)data)[11] ^= 0xff;
	return XDP_TX;
}

SEC("xdp")
int tc_tcp(struct xdp_md *ctx)
{
	count(SLOT_TCP);
	/* Out of range: the tail call fails. */
	bpf_tail_call(ctx, &jmp_table, 1000);
	return XDP_DROP;
}

SEC("xdp")
int tc_entry(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 slot = NSLOTS - 1;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		slot = SLOT_IPV4;
	else if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		slot = SLOT_IPV6;
	count(NSLOTS - 1);
	bpf_tail_call(ctx, &jmp_table, slot);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
