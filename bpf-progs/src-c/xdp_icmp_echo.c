// SPDX-License-Identifier: GPL-2.0
/* xdp_icmp_echo: answers ICMP and ICMPv6 echo requests in place, in the
 * style of xdp-tutorial's packet03-redirecting (icmp_echo).
 *
 * Ethernet (untagged) + IPv4 with IHL 5 + ICMP type 8, or + IPv6 (no
 * extension headers) + ICMPv6 type 128:
 * - swap the MAC addresses and the IP addresses;
 * - IPv4: TTL set to 64, header checksum updated incrementally (RFC 1624,
 *   by hand); ICMP type 8 -> 0, checksum updated incrementally by hand;
 * - IPv6: hop limit set to 64; ICMPv6 type 128 -> 129, checksum updated
 *   with bpf_csum_diff (the pseudo-header sum is unchanged by the swap);
 * - XDP_TX. Everything else: XDP_PASS, untouched.
 * echo_stats[0] counts IPv4 replies, [1] IPv6 replies, [2] passed frames.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct icmphdr_common {
	__u8 type;
	__u8 code;
	__sum16 cksum;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} echo_stats SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&echo_stats, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), on 16-bit words as stored. */
static __always_inline __u16 csum_replace2(__u16 check, __u16 old, __u16 new)
{
	return csum_fold((__u16)~check + (__u16)~old + (__u32)new);
}

static __always_inline void swap_macs(struct ethhdr *eth)
{
	__u8 tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
}

SEC("xdp")
int xdp_icmp_echo(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		goto pass;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);
		struct icmphdr_common *icmp = (void *)(iph + 1);
		__be32 tmp;
		__u16 old, new;

		if ((void *)(icmp + 1) > data_end)
			goto pass;
		if (iph->ihl != 5 || iph->protocol != IPPROTO_ICMP || icmp->type != 8)
			goto pass;
		tmp = iph->saddr;
		iph->saddr = iph->daddr;
		iph->daddr = tmp;
		/* TTL and protocol share a 16-bit word. */
		old = *(__u16 *)&iph->ttl;
		iph->ttl = 64;
		new = *(__u16 *)&iph->ttl;
		iph->check = csum_replace2(iph->check, old, new);
		/* Type and code share a word. */
		old = *(__u16 *)icmp;
		icmp->type = 0;
		new = *(__u16 *)icmp;
		icmp->cksum = csum_replace2(icmp->cksum, old, new);
		swap_macs(eth);
		count(0);
		return XDP_TX;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = (void *)(eth + 1);
		struct icmphdr_common *icmp = (void *)(ip6h + 1);
		struct in6_addr tmp;
		__u32 from = 0, to = 0;
		__s64 sum;

		if ((void *)(icmp + 1) > data_end)
			goto pass;
		if (ip6h->nexthdr != IPPROTO_ICMPV6 || icmp->type != 128)
			goto pass;
		tmp = ip6h->saddr;
		ip6h->saddr = ip6h->daddr;
		ip6h->daddr = tmp;
		ip6h->hop_limit = 64;
		/* The first 4 bytes with the checksum zeroed, before and after. */
		((__u8 *)&from)[0] = icmp->type;
		((__u8 *)&from)[1] = icmp->code;
		((__u8 *)&to)[0] = 129;
		((__u8 *)&to)[1] = icmp->code;
		sum = bpf_csum_diff(&from, sizeof(from), &to, sizeof(to),
				    (__u16)~icmp->cksum);
		icmp->type = 129;
		icmp->cksum = csum_fold((__u32)sum);
		swap_macs(eth);
		count(1);
		return XDP_TX;
	}
pass:
	count(2);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
