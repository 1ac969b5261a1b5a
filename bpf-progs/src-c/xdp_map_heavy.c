// SPDX-License-Identifier: GPL-2.0
/* xdp_map_heavy: the map-heavy benchmark workload (issue 7).
 *
 * Per packet: 8 lookups and 2 updates in a hash map of 1M entries
 * (u32 key -> u64 value), with keys spread over the whole map. The keys
 * come from a per-run counter (an array map) and the packet's IPv4 source
 * address, multiplied by large odd constants and masked to 20 bits: a
 * bijection on the key space, so consecutive runs touch unrelated buckets.
 *
 * `xdp-runner bench --fill big_map=1048576` fills keys 0..1M-1 (value = key)
 * before measuring, so every lookup hits and every update replaces. On an
 * empty map the lookups miss and the updates insert.
 *
 * stats[0] counts runs; stats[1] accumulates the values found, so a
 * differential run compares what the lookups saw. xdp_map_probe (in the
 * same section, after it) tells whether the map was filled.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

#define MAP_BITS 20
#define MAP_SIZE (1u << MAP_BITS)
#define KEY_MASK (MAP_SIZE - 1)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAP_SIZE);
	__type(key, __u32);
	__type(value, __u64);
} big_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline __u32 spread(__u32 x, __u32 mul)
{
	return (x * mul) & KEY_MASK;
}

SEC("xdp")
int xdp_map_heavy(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 k_runs = 0, k_sum = 1;
	__u64 *runs, *acc;
	__u64 sum = 0;
	__u32 base, src = 0;

	/* The IPv4 source address when the frame has one (offset 26). */
	if (data + 30 <= data_end)
		src = *(__u32 *)(data + 26);

	runs = bpf_map_lookup_elem(&stats, &k_runs);
	acc = bpf_map_lookup_elem(&stats, &k_sum);
	if (!runs || !acc)
		return XDP_ABORTED;
	base = (__u32)*runs * 8 ^ src;
	*runs += 1;

#pragma unroll
	for (__u32 i = 0; i < 8; i++) {
		__u32 key = spread(base + i, 0x9e3779b1);
		__u64 *v = bpf_map_lookup_elem(&big_map, &key);

		if (v)
			sum += *v;
	}

#pragma unroll
	for (__u32 i = 0; i < 2; i++) {
		__u32 key = spread(base + i, 0x85ebca6b);
		__u64 val = sum + i;

		bpf_map_update_elem(&big_map, &key, &val, BPF_ANY);
	}

	*acc += sum;
	return XDP_PASS;
}

/* xdp_map_probe: whether the map was filled, for tests of `--fill`. XDP_PASS when
 * the last key (MAP_SIZE - 1) holds its own number, XDP_TX when it holds another
 * value, XDP_DROP when it is absent.
 */
SEC("xdp")
int xdp_map_probe(struct xdp_md *ctx)
{
	__u32 key = KEY_MASK;
	__u64 *v = bpf_map_lookup_elem(&big_map, &key);

	if (!v)
		return XDP_DROP;
	return *v == KEY_MASK ? XDP_PASS : XDP_TX;
}

char _license[] SEC("license") = "GPL";
