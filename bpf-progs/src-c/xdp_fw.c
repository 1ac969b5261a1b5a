// SPDX-License-Identifier: GPL-2.0
/* xdp_fw: a source-address firewall with LPM blocklists, in the style of
 * xdp-tools' xdp-filter and the kernel's LPM trie samples.
 *
 * blocklist_v4 / blocklist_v6 are BPF_MAP_TYPE_LPM_TRIE (BPF_F_NO_PREALLOC)
 * maps from a source prefix to a rule id. The longest matching prefix of an
 * IPv4 or IPv6 (outer, untagged) source address selects the rule: the frame
 * is dropped and rule_hits[rule] (per-CPU packets and bytes) counted; rule
 * ids >= MAX_RULES count in MAX_RULES - 1. Every other frame (no match,
 * not IP, truncated) is XDP_PASS and counts in rule_hits[0].
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_RULES 16

struct lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct rule_stat {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, __u32);
} blocklist_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6_key);
	__type(value, __u32);
} blocklist_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_RULES);
	__type(key, __u32);
	__type(value, struct rule_stat);
} rule_hits SEC(".maps");

static __always_inline int verdict(__u32 *rule, __u64 bytes)
{
	__u32 idx = 0;
	struct rule_stat *st;

	if (rule)
		idx = *rule < MAX_RULES ? *rule : MAX_RULES - 1;
	st = bpf_map_lookup_elem(&rule_hits, &idx);
	if (st) {
		st->packets++;
		st->bytes += bytes;
	}
	return rule ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int xdp_fw(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = data_end - data;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return verdict(0, bytes);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);
		struct lpm_v4_key k4 = { .prefixlen = 32 };

		if ((void *)(iph + 1) > data_end)
			return verdict(0, bytes);
		__builtin_memcpy(k4.addr, &iph->saddr, 4);
		return verdict(bpf_map_lookup_elem(&blocklist_v4, &k4), bytes);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = (void *)(eth + 1);
		struct lpm_v6_key k6 = { .prefixlen = 128 };

		if ((void *)(ip6h + 1) > data_end)
			return verdict(0, bytes);
		__builtin_memcpy(k6.addr, &ip6h->saddr, 16);
		return verdict(bpf_map_lookup_elem(&blocklist_v6, &k6), bytes);
	}
	return verdict(0, bytes);
}

char _license[] SEC("license") = "GPL";
