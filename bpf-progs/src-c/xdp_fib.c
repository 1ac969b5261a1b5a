// SPDX-License-Identifier: GPL-2.0
/* xdp_fib: an IPv4 forwarder on bpf_fib_lookup, in the style of the
 * kernel's samples/bpf/xdp_fwd_kern.c.
 *
 * Ethernet (untagged) + IPv4 with TTL > 1: bpf_fib_lookup (flags 0: the
 * full FIB lookup with rules, not BPF_FIB_LOOKUP_DIRECT) with family
 * AF_INET, tos, l4_protocol, tot_len, ipv4_src/dst and ifindex =
 * ctx->ingress_ifindex. Then, by the lookup's return code:
 * - SUCCESS: TTL - 1 with an incremental header-checksum update (as
 *   ip_decrease_ttl), MACs from the lookup (dmac, smac), and
 *   bpf_redirect(params.ifindex, 0);
 * - BLACKHOLE, UNREACHABLE, PROHIBIT: XDP_DROP;
 * - anything else (NOT_FWDED, FWD_DISABLED, NO_NEIGH, FRAG_NEEDED, ...):
 *   XDP_PASS.
 * Other frames (not IPv4, TTL <= 1, truncated): XDP_PASS, no lookup.
 * fib_last[0] = { lookup rc, output ifindex, verdict, lookups }.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2

struct fib_result {
	__s32 rc;
	__u32 ifindex;
	__u32 verdict;
	__u32 lookups;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fib_result);
} fib_last SEC(".maps");

/* include/net/ip.h: ip_decrease_ttl. */
static __always_inline void ip_decrease_ttl(struct iphdr *iph)
{
	__u32 check = iph->check;

	check += bpf_htons(0x0100);
	iph->check = (__u16)(check + (check >= 0xFFFF));
	iph->ttl--;
}

static __always_inline int note(int rc, __u32 ifindex, int verdict)
{
	__u32 zero = 0;
	struct fib_result *r = bpf_map_lookup_elem(&fib_last, &zero);

	if (r) {
		r->rc = rc;
		r->ifindex = ifindex;
		r->verdict = verdict;
		r->lookups++;
	}
	return verdict;
}

SEC("xdp")
int xdp_fib(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct bpf_fib_lookup fib = {};
	int rc;

	if ((void *)(iph + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || iph->ttl <= 1)
		return XDP_PASS;

	fib.family = AF_INET;
	fib.tos = iph->tos;
	fib.l4_protocol = iph->protocol;
	fib.tot_len = bpf_ntohs(iph->tot_len);
	fib.ipv4_src = iph->saddr;
	fib.ipv4_dst = iph->daddr;
	fib.ifindex = ctx->ingress_ifindex;

	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		ip_decrease_ttl(iph);
		__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
		return note(rc, fib.ifindex, bpf_redirect(fib.ifindex, 0));
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT:
		return note(rc, fib.ifindex, XDP_DROP);
	default:
		return note(rc, fib.ifindex, XDP_PASS);
	}
}

char _license[] SEC("license") = "GPL";
