// SPDX-License-Identifier: GPL-2.0
/* xdp_foreach: bpf_for_each_map_elem over each map type that has elements to
 * walk (array, per-CPU array, hash, per-CPU hash, LRU hash), in the manner of
 * the kernel selftests' for_each_array_map_elem / for_each_hash_map_elem.
 *
 * Eight u32 words of the frame (bytes 14..46) fill the maps: arr[i] = w[i] + i,
 * hash and LRU hash keys w[i] | 1 + 2i... with value w[i] & 0xff, per-CPU array
 * and per-CPU hash values on this CPU. Then the walks, each recording its
 * return value and what its callback summed and counted in `results`:
 * a sum of keys and values, an early stop at index 3 (4 elements visited),
 * a stop at the first hash element (1), a callback deleting the hash element it
 * was given when its value is odd (then a count of those left), values doubled
 * by the callback, the walks of the per-CPU maps (this CPU's values), flags 1
 * (-EINVAL, no callback call). The per-CPU maps are emptied again at the end
 * (their slot depends on the CPU the run took). Frames shorter than 46 bytes:
 * XDP_DROP, nothing touched; else XDP_PASS.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_map;

#define N 8

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, N);
	__type(key, __u32);
	__type(value, __u64);
} arr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} parr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} phash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} lru SEC(".maps");

#define NRESULTS 48

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NRESULTS);
	__type(key, __u32);
	__type(value, __u64);
} results SEC(".maps");

struct walk {
	__u64 sum;
	__u64 count;
	__u64 stop_at;
};

static __always_inline void rec(__u32 k, __u64 v)
{
	__u64 *slot = bpf_map_lookup_elem(&results, &k);

	if (slot)
		*slot = v;
}

/* Sums keys (shifted) and values; stops when the key is stop_at. */
static long sum_cb(struct bpf_map *map, __u32 *key, __u64 *val, struct walk *w)
{
	w->sum += ((__u64)*key << 32) + *val;
	w->count++;
	if (*key == w->stop_at)
		return 1;
	return 0;
}

static long first_cb(struct bpf_map *map, __u32 *key, __u64 *val, struct walk *w)
{
	w->count++;
	return 1;
}

/* Deletes the element it was given when its value is odd. */
static long delete_odd_cb(struct bpf_map *map, __u32 *key, __u64 *val, struct walk *w)
{
	w->count++;
	if (*val & 1)
		w->sum += bpf_map_delete_elem(map, key) == 0;
	return 0;
}

static long double_cb(struct bpf_map *map, __u32 *key, __u64 *val, struct walk *w)
{
	*val *= 2;
	w->count++;
	return 0;
}

static long delete_cb(struct bpf_map *map, __u32 *key, __u64 *val, struct walk *w)
{
	w->count += bpf_map_delete_elem(map, key) == 0;
	return 0;
}

static __always_inline __u32 walk_rec(__u32 k, void *map, void *cb, __u64 stop_at, __u64 flags)
{
	struct walk w = { .stop_at = stop_at };
	long ret = bpf_for_each_map_elem(map, cb, &w, flags);

	rec(k, ret);
	rec(k + 1, w.sum);
	rec(k + 2, w.count);
	return k + 3;
}

SEC("xdp")
int xdp_foreach(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 *w = data + 14;
	__u32 i, k = 0;

	if ((void *)(w + N) > data_end)
		return XDP_DROP;
	for (i = 0; i < N; i++) {
		__u32 key = i;
		__u64 v = (__u64)w[i] + i;

		bpf_map_update_elem(&arr, &key, &v, BPF_ANY);
		if (i < 4)
			bpf_map_update_elem(&parr, &key, &v, BPF_ANY);
		key = (w[i] | 1) + 2 * i;
		v = (w[i] & 0xff) + i;
		bpf_map_update_elem(&hash, &key, &v, BPF_ANY);
		bpf_map_update_elem(&phash, &key, &v, BPF_ANY);
		if (i < 5)
			bpf_map_update_elem(&lru, &key, &v, BPF_ANY);
	}
	k = walk_rec(k, &arr, sum_cb, ~0ULL, 0);		/* 0 */
	k = walk_rec(k, &arr, sum_cb, 3, 0);			/* 3 */
	k = walk_rec(k, &hash, sum_cb, ~0ULL, 0);		/* 6 */
	k = walk_rec(k, &hash, first_cb, 0, 0);			/* 9 */
	k = walk_rec(k, &lru, sum_cb, ~0ULL, 0);		/* 12 */
	k = walk_rec(k, &parr, sum_cb, ~0ULL, 0);		/* 15 */
	k = walk_rec(k, &phash, sum_cb, ~0ULL, 0);		/* 18 */
	k = walk_rec(k, &arr, double_cb, 0, 0);			/* 21 */
	k = walk_rec(k, &arr, sum_cb, 5, 0);			/* 24 */
	k = walk_rec(k, &hash, delete_odd_cb, 0, 0);		/* 27 */
	k = walk_rec(k, &hash, sum_cb, ~0ULL, 0);		/* 30 */
	k = walk_rec(k, &arr, sum_cb, ~0ULL, 1);		/* 33: -EINVAL */
	/* The per-CPU maps end as they began: empty, zero. */
	k = walk_rec(k, &phash, delete_cb, 0, 0);		/* 36 */
	k = walk_rec(k, &parr, double_cb, 0, 0);		/* 39 */
	for (i = 0; i < 4; i++) {
		__u32 key = i;
		__u64 zero = 0;

		bpf_map_update_elem(&parr, &key, &zero, BPF_ANY);
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
