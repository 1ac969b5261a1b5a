// SPDX-License-Identifier: GPL-2.0
/* xdp_encap: an IPIP encapsulator in the style of the kernel's
 * samples/bpf/xdp_tx_iptunnel_kern.c.
 *
 * For an IPv4 frame: bpf_xdp_adjust_head() makes room for an outer IPv4
 * header, a new Ethernet header is written in front of it (destination: the
 * old source MAC, source: the old destination MAC, as the frame goes back out
 * with XDP_TX), then the outer header (protocol IPPROTO_IPIP, TTL 64,
 * TUNNEL_SADDR -> TUNNEL_DADDR, tot_len = inner tot_len + 20) whose checksum
 * is bpf_csum_diff() over the header, folded to 16 bits and inverted.
 * Returns XDP_TX. Non-IPv4 frames: XDP_PASS. Truncated frames: XDP_DROP.
 * adjust_head failure: XDP_ABORTED.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define TUNNEL_SADDR 0xc0a80001 /* 192.168.0.1 */
#define TUNNEL_DADDR 0xc0a80002 /* 192.168.0.2 */

struct encap_stat {
	__u64 packets;
	__u64 bytes;	/* frame length after encapsulation */
	__u64 csum;	/* the raw bpf_csum_diff() result of the last frame */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct encap_stat);
} encap_stats SEC(".maps");

static __always_inline __u16 csum_fold_helper(__u64 csum)
{
	int i;

#pragma unroll
	for (i = 0; i < 4; i++) {
		if (csum >> 16)
			csum = (csum & 0xffff) + (csum >> 16);
	}
	return ~csum;
}

SEC("xdp")
int xdp_encap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ethhdr *new_eth, *old_eth;
	struct iphdr *inner, *outer;
	struct encap_stat *st;
	__u8 old_src[ETH_ALEN], old_dst[ETH_ALEN];
	__u16 inner_len;
	__u32 key = 0;
	__s64 csum;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	inner = (void *)(eth + 1);
	if ((void *)(inner + 1) > data_end)
		return XDP_DROP;
	inner_len = bpf_ntohs(inner->tot_len);
	__builtin_memcpy(old_src, eth->h_source, ETH_ALEN);
	__builtin_memcpy(old_dst, eth->h_dest, ETH_ALEN);

	if (bpf_xdp_adjust_head(ctx, 0 - (int)sizeof(struct iphdr)))
		return XDP_ABORTED;

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	new_eth = data;
	outer = data + sizeof(*new_eth);
	old_eth = data + sizeof(*outer);
	if ((void *)(new_eth + 1) > data_end || (void *)(old_eth + 1) > data_end ||
	    (void *)(outer + 1) > data_end)
		return XDP_DROP;

	__builtin_memcpy(new_eth->h_dest, old_src, ETH_ALEN);
	__builtin_memcpy(new_eth->h_source, old_dst, ETH_ALEN);
	new_eth->h_proto = bpf_htons(ETH_P_IP);

	outer->version = 4;
	outer->ihl = sizeof(*outer) >> 2;
	outer->tos = 0;
	outer->tot_len = bpf_htons(inner_len + sizeof(*outer));
	outer->id = 0;
	outer->frag_off = bpf_htons(0x4000); /* DF */
	outer->ttl = 64;
	outer->protocol = IPPROTO_IPIP;
	outer->check = 0;
	outer->saddr = bpf_htonl(TUNNEL_SADDR);
	outer->daddr = bpf_htonl(TUNNEL_DADDR);

	csum = bpf_csum_diff(0, 0, (__be32 *)outer, sizeof(*outer), 0);
	outer->check = csum_fold_helper(csum);

	st = bpf_map_lookup_elem(&encap_stats, &key);
	if (st) {
		st->packets++;
		st->bytes += data_end - data;
		st->csum = csum;
	}
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
