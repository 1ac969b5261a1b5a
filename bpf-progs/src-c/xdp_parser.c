// SPDX-License-Identifier: GPL-2.0
/* xdp_parser: an L2/L3/L4 parser in the style of xdp-tutorial's
 * parsing_helpers.h.
 *
 * - Ethernet, then up to two VLAN tags (802.1Q / 802.1ad);
 * - IPv4 honouring IHL (options), or IPv6 skipping up to MAX_EXT_HDRS
 *   extension headers (hop-by-hop, routing, destination options, fragment);
 * - TCP, UDP, ICMP, ICMPv6.
 *
 * Per-CPU counters (packets and bytes) per protocol, in stats_map.
 * A blocklist of destination ports (key: __u16 in network byte order) DROPs
 * matching TCP/UDP frames.
 *
 * Verdicts: XDP_ABORTED when a header claims more than the frame holds
 * (truncated header, IHL or doff beyond the end, IPv4 total length or IPv6
 * payload length larger than the frame, IHL < 5); XDP_DROP for a blocked
 * port; XDP_PASS otherwise.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_VLAN_DEPTH 2
#define MAX_EXT_HDRS 3

/* Indices into stats_map. */
enum stat_idx {
	STAT_ETH = 0,	/* every frame that holds an Ethernet header */
	STAT_VLAN,	/* frames with at least one VLAN tag */
	STAT_IPV4,
	STAT_IPV6,
	STAT_TCP,
	STAT_UDP,
	STAT_ICMP,
	STAT_ICMPV6,
	STAT_OTHER,	/* an L3 or L4 protocol we do not parse */
	STAT_MALFORMED,	/* XDP_ABORTED */
	STAT_BLOCKED,	/* XDP_DROP by the port blocklist */
	STAT_MAX,
};

struct datarec {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, struct datarec);
} stats_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);	/* destination port, network byte order */
	__type(value, __u8);
} port_blocklist SEC(".maps");

struct hdr_cursor {
	void *pos;
};

struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

/* <linux/icmp.h> drags in glibc headers; the common part is enough. */
struct icmphdr_common {
	__u8 type;
	__u8 code;
	__sum16 cksum;
	__be16 id;
	__be16 sequence;
};

struct ipv6_opt_hdr_generic {
	__u8 nexthdr;
	__u8 hdrlen;
};

static __always_inline void count(__u32 idx, __u64 bytes)
{
	struct datarec *rec = bpf_map_lookup_elem(&stats_map, &idx);

	if (!rec)
		return;
	/* Per-CPU: no atomics needed. */
	rec->packets++;
	rec->bytes += bytes;
}

static __always_inline int proto_is_vlan(__u16 h_proto)
{
	return h_proto == bpf_htons(ETH_P_8021Q) ||
	       h_proto == bpf_htons(ETH_P_8021AD);
}

/* Returns the EtherType (network order), or -1 when truncated. */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end,
					int *vlans)
{
	struct ethhdr *eth = nh->pos;
	struct vlan_hdr *vlh;
	__u16 h_proto;
	int i;

	if ((void *)(eth + 1) > data_end)
		return -1;
	nh->pos = eth + 1;
	h_proto = eth->h_proto;

#pragma unroll
	for (i = 0; i < MAX_VLAN_DEPTH; i++) {
		if (!proto_is_vlan(h_proto))
			break;
		vlh = nh->pos;
		if ((void *)(vlh + 1) > data_end)
			return -1;
		h_proto = vlh->h_vlan_encapsulated_proto;
		nh->pos = vlh + 1;
		(*vlans)++;
	}
	return h_proto;
}

/* Returns the L4 protocol, or -1 when malformed. */
static __always_inline int parse_iphdr(struct hdr_cursor *nh, void *data_end)
{
	struct iphdr *iph = nh->pos;
	int hdrsize;

	if ((void *)(iph + 1) > data_end)
		return -1;
	hdrsize = iph->ihl * 4;
	if (hdrsize < (int)sizeof(*iph))
		return -1;
	if (nh->pos + hdrsize > data_end)
		return -1;
	if (nh->pos + bpf_ntohs(iph->tot_len) > data_end)
		return -1;
	nh->pos += hdrsize;
	return iph->protocol;
}

static __always_inline int is_ipv6_ext(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT;
}

static __always_inline int parse_ip6hdr(struct hdr_cursor *nh, void *data_end)
{
	struct ipv6hdr *ip6h = nh->pos;
	struct ipv6_opt_hdr_generic *ext;
	__u8 nexthdr;
	int i;

	if ((void *)(ip6h + 1) > data_end)
		return -1;
	nh->pos = ip6h + 1;
	if (nh->pos + bpf_ntohs(ip6h->payload_len) > data_end)
		return -1;
	nexthdr = ip6h->nexthdr;

#pragma unroll
	for (i = 0; i < MAX_EXT_HDRS; i++) {
		if (!is_ipv6_ext(nexthdr))
			break;
		ext = nh->pos;
		if ((void *)(ext + 1) > data_end)
			return -1;
		/* The fragment header has a fixed size of 8 bytes; the others
		 * count 8-byte units beyond their first 8 bytes. */
		if (nexthdr == IPPROTO_FRAGMENT)
			nh->pos += 8;
		else
			nh->pos += (ext->hdrlen + 1) * 8;
		nexthdr = ext->nexthdr;
		if (nh->pos > data_end)
			return -1;
	}
	return nexthdr;
}

SEC("xdp")
int xdp_parser(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = data_end - data;
	struct hdr_cursor nh = { .pos = data };
	int vlans = 0;
	int eth_type, l4;
	__be16 dport = 0;

	eth_type = parse_ethhdr(&nh, data_end, &vlans);
	if (eth_type < 0)
		goto malformed;
	count(STAT_ETH, bytes);
	if (vlans)
		count(STAT_VLAN, bytes);

	if (eth_type == bpf_htons(ETH_P_IP)) {
		count(STAT_IPV4, bytes);
		l4 = parse_iphdr(&nh, data_end);
	} else if (eth_type == bpf_htons(ETH_P_IPV6)) {
		count(STAT_IPV6, bytes);
		l4 = parse_ip6hdr(&nh, data_end);
	} else {
		count(STAT_OTHER, bytes);
		return XDP_PASS;
	}
	if (l4 < 0)
		goto malformed;

	if (l4 == IPPROTO_TCP) {
		struct tcphdr *tcph = nh.pos;

		if ((void *)(tcph + 1) > data_end)
			goto malformed;
		if (tcph->doff < 5 || nh.pos + tcph->doff * 4 > data_end)
			goto malformed;
		count(STAT_TCP, bytes);
		dport = tcph->dest;
	} else if (l4 == IPPROTO_UDP) {
		struct udphdr *udph = nh.pos;

		if ((void *)(udph + 1) > data_end)
			goto malformed;
		if (nh.pos + bpf_ntohs(udph->len) > data_end)
			goto malformed;
		count(STAT_UDP, bytes);
		dport = udph->dest;
	} else if (l4 == IPPROTO_ICMP) {
		struct icmphdr_common *icmph = nh.pos;

		if ((void *)(icmph + 1) > data_end)
			goto malformed;
		count(STAT_ICMP, bytes);
		return XDP_PASS;
	} else if (l4 == IPPROTO_ICMPV6) {
		struct icmp6hdr *icmp6h = nh.pos;

		if ((void *)(icmp6h + 1) > data_end)
			goto malformed;
		count(STAT_ICMPV6, bytes);
		return XDP_PASS;
	} else {
		count(STAT_OTHER, bytes);
		return XDP_PASS;
	}

	if (bpf_map_lookup_elem(&port_blocklist, &dport)) {
		count(STAT_BLOCKED, bytes);
		return XDP_DROP;
	}
	return XDP_PASS;

malformed:
	count(STAT_MALFORMED, bytes);
	return XDP_ABORTED;
}

char _license[] SEC("license") = "GPL";
