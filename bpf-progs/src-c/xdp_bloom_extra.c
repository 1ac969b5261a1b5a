// SPDX-License-Identifier: GPL-2.0
/* xdp_bloom_extra: bloom filters whose hash count comes from the object
 * (`__uint(map_extra, N)`): 1 and 15 hashes, and the default (5), each with
 * BPF_F_ZERO_SEED so their bits are the kernel's. Sixteen u32 values derived
 * from the frame's first word are pushed into each; then 64 other values are
 * looked up (bpf_map_peek_elem) and each answer (0 or -ENOENT) lands in
 * `results`: the false positives depend on the hash count and the bit count it
 * gives the filter. Frames shorter than 18 bytes: XDP_DROP; else XDP_PASS.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 4);
	__uint(map_flags, BPF_F_ZERO_SEED);
	__uint(map_extra, 1);
	__type(value, __u32);
} bloom1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 4);
	__uint(map_flags, BPF_F_ZERO_SEED);
	__uint(map_extra, 15);
	__type(value, __u32);
} bloom15 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 4);
	__uint(map_flags, BPF_F_ZERO_SEED);
	__type(value, __u32);
} bloom5 SEC(".maps");

#define PROBES 64

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PROBES);
	__type(key, __u32);
	__type(value, __u64);
} results SEC(".maps");

SEC("xdp")
int xdp_bloom_extra(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 *w = data + 14;
	__u32 seed, i;

	if ((void *)(w + 1) > data_end)
		return XDP_DROP;
	seed = *w;
	for (i = 0; i < 16; i++) {
		__u32 v = seed + i * 0x9e3779b9;

		bpf_map_push_elem(&bloom1, &v, BPF_ANY);
		bpf_map_push_elem(&bloom15, &v, BPF_ANY);
		bpf_map_push_elem(&bloom5, &v, BPF_ANY);
	}
	for (i = 0; i < PROBES; i++) {
		__u32 v = seed ^ (i * 0x85ebca6b + 0x1234567);
		__u64 r = 0, *slot;
		__u32 k = i;

		r |= (__u64)(__u32)bpf_map_peek_elem(&bloom1, &v);
		r |= (__u64)(bpf_map_peek_elem(&bloom15, &v) != 0) << 32;
		r |= (__u64)(bpf_map_peek_elem(&bloom5, &v) != 0) << 33;
		slot = bpf_map_lookup_elem(&results, &k);
		if (slot)
			*slot = r;
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
