// SPDX-License-Identifier: GPL-2.0
/* xdp_fib_probe: calls bpf_fib_lookup with arguments taken from the frame,
 * for differential tests of the lookup itself (the kernel in a netns built
 * from a script vs the runtime's table built from the same script).
 *
 * Frame layout (at least 72 bytes; the test run does not parse it):
 *   [0..64)   struct bpf_fib_lookup, passed as is;
 *   [64..68)  flags (u32, little-endian: memory order on x86-64);
 *   [68]      plen selector: 0 -> sizeof(params) = 64, 1 -> 32, 2 -> 63.
 * The result goes to fib_probe_out[0] = { rc as s64, the 64 params bytes
 * after the call }. Returns XDP_PASS; XDP_ABORTED for a short frame.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct probe_params {
	__u8 raw[64];
};

struct probe_out {
	__s64 rc;
	struct probe_params params;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct probe_out);
} fib_probe_out SEC(".maps");

SEC("xdp")
int xdp_fib_probe(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct probe_params p;
	struct probe_out *out;
	__u32 zero = 0, flags;
	__u8 sel;
	long rc;

	if (data + 72 > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(&p, data, sizeof(p));
	flags = *(__u32 *)(data + 64);
	sel = *(__u8 *)(data + 68);

	if (sel == 1)
		rc = bpf_fib_lookup(ctx, (void *)&p, 32, flags);
	else if (sel == 2)
		rc = bpf_fib_lookup(ctx, (void *)&p, 63, flags);
	else
		rc = bpf_fib_lookup(ctx, (void *)&p, sizeof(p), flags);

	out = bpf_map_lookup_elem(&fib_probe_out, &zero);
	if (!out)
		return XDP_ABORTED;
	out->rc = rc;
	__builtin_memcpy(&out->params, &p, sizeof(p));
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
