// SPDX-License-Identifier: GPL-2.0
/* xdp_loop: walks TCP options with bpf_loop, in the style of the kernel
 * selftests' xdp_synproxy_kern.c (tscookie_tcpopt_parse).
 *
 * Ethernet (untagged) + IPv4 (IHL honoured) + TCP: a bpf_loop of at most
 * MAX_OPT_LOOPS iterations calls next_option(), which consumes one option
 * per call and stops (returns 1) at the end of the options, at EOL, at a
 * malformed or truncated option. Recognised: NOP (counted), MSS (kind 2,
 * len 4), window scale (3, len 3), SACK permitted (4, len 2), timestamps
 * (8, len 10); other kinds are counted as unknown and skipped.
 * tcpopt_seen[0] gets the parse result, including bpf_loop's return value
 * (the number of callback calls). Verdict XDP_PASS; the frame is unchanged.
 * Frames that are not IPv4 TCP leave tcpopt_seen untouched.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_OPT_LOOPS 16

struct tcpopt_result {
	__u32 loops;	/* bpf_loop's return value */
	__u32 calls;	/* callback invocations, counted by the callback */
	__u32 mss;
	__u32 wscale;
	__u32 sack_ok;
	__u32 tsval;
	__u32 tsecr;
	__u32 nops;
	__u32 unknown;
	__u32 end_off;	/* offset of the parse position from the TCP header */
};

/* The position is an offset from the TCP header, not a pointer: a
 * masked offset keeps the verifier's view of the callback's state bounded,
 * so its iterations converge. */
struct tcpopt_ctx {
	__u8 *tcp;
	void *data_end;
	__u32 off;	/* parse position, from the TCP header */
	__u32 end;	/* doff * 4 */
	struct tcpopt_result r;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tcpopt_result);
} tcpopt_seen SEC(".maps");

static long next_option(__u32 index, void *arg)
{
	struct tcpopt_ctx *c = arg;
	__u32 off = c->off;
	__u8 kind, len, *p;

	c->r.calls++;
	if (off >= c->end)
		return 1;
	p = c->tcp + (off & 0x3f); /* end <= 60: the mask changes nothing */
	if (p + 1 > (__u8 *)c->data_end)
		return 1;
	kind = p[0];
	if (kind == 0) /* EOL */
		return 1;
	if (kind == 1) { /* NOP */
		c->r.nops++;
		c->off = off + 1;
		return 0;
	}
	if (off + 2 > c->end || p + 2 > (__u8 *)c->data_end)
		return 1;
	len = p[1];
	if (len < 2 || off + len > c->end)
		return 1;
	switch (kind) {
	case 2:
		if (len == 4 && p + 4 <= (__u8 *)c->data_end)
			c->r.mss = (p[2] << 8) | p[3];
		break;
	case 3:
		if (len == 3 && p + 3 <= (__u8 *)c->data_end)
			c->r.wscale = p[2];
		break;
	case 4:
		if (len == 2)
			c->r.sack_ok = 1;
		break;
	case 8:
		if (len == 10 && p + 10 <= (__u8 *)c->data_end) {
			c->r.tsval = bpf_ntohl(*(__be32 *)(p + 2));
			c->r.tsecr = bpf_ntohl(*(__be32 *)(p + 6));
		}
		break;
	default:
		c->r.unknown++;
	}
	c->off = off + len;
	return 0;
}

SEC("xdp")
int xdp_loop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct tcpopt_result *out;
	struct tcpopt_ctx c = {};
	struct tcphdr *th;
	__u32 zero = 0;
	long n;

	if ((void *)(iph + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || iph->protocol != IPPROTO_TCP ||
	    iph->ihl < 5)
		return XDP_PASS;
	th = (void *)iph + iph->ihl * 4;
	if ((void *)(th + 1) > data_end)
		return XDP_PASS;

	c.tcp = (__u8 *)th;
	c.off = sizeof(*th);
	c.end = th->doff * 4;
	c.data_end = data_end;
	n = bpf_loop(MAX_OPT_LOOPS, next_option, &c, 0);

	out = bpf_map_lookup_elem(&tcpopt_seen, &zero);
	if (!out)
		return XDP_PASS;
	__builtin_memcpy(out, &c.r, sizeof(*out));
	out->loops = n;
	out->end_off = c.off;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
