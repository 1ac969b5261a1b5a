// SPDX-License-Identifier: GPL-2.0
/* xdp_fwd: a two-port forwarder in the style of the kernel's
 * samples/bpf/xdp_redirect_map: every frame goes out of the port that
 * fwd_ports names for the interface it arrived on.
 *
 * - fwd_ports is a DEVMAP keyed by ingress ifindex (below 64); the value is
 *   the target ifindex;
 * - bpf_redirect_map(&fwd_ports, ingress_ifindex, XDP_PASS): a frame of an
 *   interface without a port goes to the host's stack;
 * - fwd_stats[0] counts redirected frames, [1] passed ones, [2] their bytes.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} fwd_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} fwd_stats SEC(".maps");

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&fwd_stats, &idx);

	if (v)
		*v += n;
}

SEC("xdp")
int xdp_fwd(struct xdp_md *ctx)
{
	__u32 key = ctx->ingress_ifindex & 63;
	long ret;

	ret = bpf_redirect_map(&fwd_ports, key, XDP_PASS);
	count(ret == XDP_REDIRECT ? 0 : 1, 1);
	count(2, ctx->data_end - ctx->data);
	return ret;
}

char _license[] SEC("license") = "GPL";
