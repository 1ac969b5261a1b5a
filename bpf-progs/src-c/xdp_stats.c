// SPDX-License-Identifier: GPL-2.0
/* xdp_stats: per-CPU statistics by verdict and by protocol, in the style of
 * xdp-tutorial's common_kern_user.h / xdp_stats_record_action.
 *
 * Verdict: XDP_ABORTED when the Ethernet or IP header is truncated,
 * XDP_DROP for ICMP (IPv4 protocol 1) and ICMPv6 (IPv6 next header 58),
 * XDP_PASS otherwise.
 * - action_stats (PERCPU_ARRAY, 5 entries: one per XDP action):
 *   packets and bytes of the frames that got that verdict;
 * - proto_stats (PERCPU_HASH): key = the IPv4 protocol / IPv6 next header
 *   (no extension headers walked), or 0x10000 | EtherType for other
 *   frames (0x10000 when truncated); value = packets and bytes. A new key
 *   is inserted with BPF_NOEXIST.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct datarec {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDP_REDIRECT + 1);
	__type(key, __u32);
	__type(value, struct datarec);
} action_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct datarec);
} proto_stats SEC(".maps");

static __always_inline __u32 record(__u32 action, __u32 proto, __u64 bytes)
{
	struct datarec *rec = bpf_map_lookup_elem(&action_stats, &action);

	if (rec) {
		rec->packets++;
		rec->bytes += bytes;
	}
	rec = bpf_map_lookup_elem(&proto_stats, &proto);
	if (rec) {
		rec->packets++;
		rec->bytes += bytes;
	} else {
		struct datarec init = { .packets = 1, .bytes = bytes };

		bpf_map_update_elem(&proto_stats, &proto, &init, BPF_NOEXIST);
	}
	return action;
}

SEC("xdp")
int xdp_stats(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = data_end - data;
	struct ethhdr *eth = data;
	__u32 proto;

	if ((void *)(eth + 1) > data_end)
		return record(XDP_ABORTED, 0x10000, bytes);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);

		if ((void *)(iph + 1) > data_end)
			return record(XDP_ABORTED, 0x10000 | ETH_P_IP, bytes);
		proto = iph->protocol;
		return record(proto == IPPROTO_ICMP ? XDP_DROP : XDP_PASS, proto, bytes);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = (void *)(eth + 1);

		if ((void *)(ip6h + 1) > data_end)
			return record(XDP_ABORTED, 0x10000 | ETH_P_IPV6, bytes);
		proto = ip6h->nexthdr;
		return record(proto == IPPROTO_ICMPV6 ? XDP_DROP : XDP_PASS, proto, bytes);
	}
	return record(XDP_PASS, 0x10000 | bpf_ntohs(eth->h_proto), bytes);
}

char _license[] SEC("license") = "GPL";
