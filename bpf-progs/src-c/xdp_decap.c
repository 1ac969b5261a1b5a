// SPDX-License-Identifier: GPL-2.0
/* xdp_decap: strips IPIP / IP6-in-IP / GUE encapsulation, in the style of
 * Katran's decap_kern.c.
 *
 * Outer Ethernet + IPv4 (IHL 5, not fragmented), then:
 * - protocol 4 (IPIP): the inner packet is IPv4;
 * - protocol 41: the inner packet is IPv6;
 * - UDP to port 6080 with a GUE variant 0 header without options (first
 *   byte 0): proto_ctype 4 -> IPv4, 41 -> IPv6.
 * The outer Ethernet header is moved forward over the outer headers, its
 * EtherType set for the inner packet, and bpf_xdp_adjust_head(+n) drops the
 * rest: 20 bytes for IPIP, 32 bytes for GUE. Verdict XDP_PASS either way
 * (the inner packet goes up the stack). Per-CPU counters in decap_stats.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define GUE_PORT 6080

enum { DS_PASS = 0, DS_IPIP, DS_IP6IP, DS_GUE, DS_MAX };

struct guehdr {
	__u8 hlen_ver;
	__u8 proto_ctype;
	__be16 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} decap_stats SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&decap_stats, &idx);

	if (v)
		*v += 1;
}

SEC("xdp")
int xdp_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);
	struct ethhdr *neth;
	__u16 inner_proto;
	int strip, stat, i;

	if ((void *)(iph + 1) > data_end)
		goto pass;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl != 5 ||
	    (iph->frag_off & bpf_htons(0x3fff)))
		goto pass;

	if (iph->protocol == IPPROTO_IPIP) {
		strip = sizeof(struct iphdr);
		inner_proto = ETH_P_IP;
		stat = DS_IPIP;
	} else if (iph->protocol == IPPROTO_IPV6) {
		strip = sizeof(struct iphdr);
		inner_proto = ETH_P_IPV6;
		stat = DS_IP6IP;
	} else if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *uh = (void *)(iph + 1);
		struct guehdr *gh = (void *)(uh + 1);

		if ((void *)(gh + 1) > data_end)
			goto pass;
		if (uh->dest != bpf_htons(GUE_PORT) || gh->hlen_ver != 0)
			goto pass;
		if (gh->proto_ctype == IPPROTO_IPIP)
			inner_proto = ETH_P_IP;
		else if (gh->proto_ctype == IPPROTO_IPV6)
			inner_proto = ETH_P_IPV6;
		else
			goto pass;
		strip = sizeof(struct iphdr) + sizeof(*uh) + sizeof(*gh);
		stat = DS_GUE;
	} else {
		goto pass;
	}

	/* The new Ethernet header ends where the inner packet starts. */
	neth = data + strip;
	if ((void *)(neth + 1) > data_end)
		goto pass;
#pragma unroll
	for (i = ETH_ALEN - 1; i >= 0; i--) {
		neth->h_source[i] = eth->h_source[i];
		neth->h_dest[i] = eth->h_dest[i];
	}
	neth->h_proto = bpf_htons(inner_proto);
	if (bpf_xdp_adjust_head(ctx, strip))
		return XDP_ABORTED;
	count(stat);
	return XDP_PASS;

pass:
	count(DS_PASS);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
