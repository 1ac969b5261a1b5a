// SPDX-License-Identifier: GPL-2.0
/* xdp_queue: queue, stack and bloom filter maps (bpf_map_push_elem,
 * bpf_map_pop_elem, bpf_map_peek_elem) and bpf_map_lookup_percpu_elem, in the
 * manner of the kernel selftests' test_queue_stack_map and bloom_filter_map.
 *
 * Six u32 words of the frame (bytes 14..38) are pushed into a queue and a
 * stack of four entries (the fifth with BPF_ANY fails with -E2BIG, the sixth
 * with BPF_EXIST drops the oldest) and into a bloom filter (BPF_F_ZERO_SEED,
 * so its bits are the kernel's). Then the queue and the stack are peeked and
 * popped until empty (a pop of an empty map zeroes the value), the bloom
 * filter is checked for the six words and for 16 others (derived from the first), and the per-CPU
 * array is looked up on CPU 0 and on CPU 4096 (NULL). Every return value and
 * value goes to `results`; the queue and stack end empty. Verdict XDP_PASS.
 * Frames shorter than 38 bytes: XDP_DROP, nothing touched.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 4);
	__type(value, __u32);
} queue SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 4);
	__type(value, __u32);
} stack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 8);
	__uint(map_flags, BPF_F_ZERO_SEED);
	__type(value, __u32);
} bloom SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pcpu SEC(".maps");

#define NRESULTS 64

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NRESULTS);
	__type(key, __u32);
	__type(value, __u64);
} results SEC(".maps");

static __always_inline void rec(__u32 k, long ret, __u32 val)
{
	__u64 *slot = bpf_map_lookup_elem(&results, &k);

	if (slot)
		*slot = ((__u64)(__u32)ret << 32) | val;
}

SEC("xdp")
int xdp_queue(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 *w = data + 14;
	__u32 k = 0, i, v;
	__u64 *p;

	if ((void *)(w + 6) > data_end)
		return XDP_DROP;
	for (i = 0; i < 6; i++) {
		__u64 flags = i == 5 ? BPF_EXIST : BPF_ANY;

		v = w[i];
		rec(k++, bpf_map_push_elem(&queue, &v, flags), v);
		rec(k++, bpf_map_push_elem(&stack, &v, flags), v);
		rec(k++, bpf_map_push_elem(&bloom, &v, BPF_ANY), v);
	}
	v = 0;
	rec(k++, bpf_map_push_elem(&queue, &v, BPF_NOEXIST), v);
	v = 0xdeadbeef;
	rec(k++, bpf_map_peek_elem(&queue, &v), v);
	v = 0xdeadbeef;
	rec(k++, bpf_map_peek_elem(&stack, &v), v);
	for (i = 0; i < 5; i++) {
		v = 0xdeadbeef;
		rec(k++, bpf_map_pop_elem(&queue, &v), v);
		v = 0xdeadbeef;
		rec(k++, bpf_map_pop_elem(&stack, &v), v);
	}
	v = 0xdeadbeef;
	rec(k++, bpf_map_peek_elem(&queue, &v), v);
	for (i = 0; i < 6; i++) {
		v = w[i];
		rec(k++, bpf_map_peek_elem(&bloom, &v), v);
	}
	for (i = 0; i < 16; i++) {
		v = (i + 1) * 2654435761u ^ w[0];
		rec(k++, bpf_map_peek_elem(&bloom, &v), v);
	}
	i = 0;
	p = bpf_map_lookup_percpu_elem(&pcpu, &i, 0);
	if (p)
		*p += 1;
	rec(k++, p != 0, p ? *p : 0);
	p = bpf_map_lookup_percpu_elem(&pcpu, &i, 4096);
	rec(k++, p != 0, 0);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
