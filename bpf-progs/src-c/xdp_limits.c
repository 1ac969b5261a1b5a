// SPDX-License-Identifier: GPL-2.0
/* Probes the limits of the XDP buffer helpers and records every return value:
 * adjust_head below hard_start + sizeof(struct xdp_frame), metadata length and
 * alignment rules of adjust_meta, growing the tail to the frame's end (3520 bytes of
 * packet) and shrinking it below an Ethernet header. Run repeatedly, each run starts
 * from the geometry the previous one left, as in the kernel's test run. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __s64);
} limits SEC(".maps");

static __always_inline void put(__u32 k, __s64 v)
{
	bpf_map_update_elem(&limits, &k, &v, BPF_ANY);
}

SEC("xdp")
int xdp_limits(struct xdp_md *ctx)
{
	int len = ctx->data_end - ctx->data;

	put(0, bpf_xdp_adjust_head(ctx, -217));
	put(1, bpf_xdp_adjust_head(ctx, -216));
	put(2, bpf_xdp_adjust_head(ctx, 216));
	put(3, bpf_xdp_adjust_meta(ctx, -36));
	put(4, bpf_xdp_adjust_meta(ctx, -6));
	put(5, bpf_xdp_adjust_meta(ctx, -32));
	put(6, bpf_xdp_adjust_head(ctx, -185));
	put(7, bpf_xdp_adjust_head(ctx, -184));
	put(8, bpf_xdp_adjust_head(ctx, 184));
	put(9, bpf_xdp_adjust_tail(ctx, 3520 - len + 1));
	put(10, bpf_xdp_adjust_tail(ctx, 3520 - len));
	put(11, bpf_xdp_adjust_tail(ctx, -(3520 - 13)));
	put(12, bpf_xdp_adjust_tail(ctx, -(3520 - 14)));
	put(13, bpf_xdp_adjust_head(ctx, 1));
	put(14, bpf_xdp_adjust_meta(ctx, 32));
	put(15, ctx->data_end - ctx->data_meta);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
