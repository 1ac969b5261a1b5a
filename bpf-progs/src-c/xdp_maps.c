// SPDX-License-Identifier: GPL-2.0
/* xdp_maps: the map semantics a runtime must share with the kernel.
 *
 * Every helper return code lands in `res` (slot -> s64), so the kernel oracle's
 * map dump carries them:
 *   0..11  hash (max 2): update/delete with every flag on missing, existing and
 *          full maps, bad flags
 *   12..16 array bounds and flags
 *   17..24 LRU hash (max 4) at capacity: six inserts, the newest present, never
 *          more than max_entries present (the keys are deleted afterwards: which
 *          ones the kernel's LRU evicts depends on its per-CPU free lists)
 *   25..40 LPM trie: overlapping prefixes, longest match, flags, delete
 *   41..42 per-CPU array: this CPU's slot, counted across repeats
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define E2BIG 7
#define ENOENT 2
#define EEXIST 17
#define EINVAL 22

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 48);
	__type(key, __u32);
	__type(value, __s64);
} res SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u64);
} small_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} arr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} lru SEC(".maps");

struct lpm_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 5);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
	__type(value, __u32);
} routes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} pcpu SEC(".maps");

static __always_inline void put(__u32 slot, __s64 v)
{
	bpf_map_update_elem(&res, &slot, &v, BPF_ANY);
}

static __always_inline __s64 lpm_get(__u8 a, __u8 b, __u8 c, __u8 d)
{
	struct lpm_key k = { .prefixlen = 32, .addr = { a, b, c, d } };
	__u32 *v = bpf_map_lookup_elem(&routes, &k);

	return v ? *v : -1;
}

static __always_inline __s64 lpm_put(__u32 plen, __u8 a, __u8 b, __u8 c, __u8 d,
				     __u32 val, __u64 flags)
{
	struct lpm_key k = { .prefixlen = plen, .addr = { a, b, c, d } };

	return bpf_map_update_elem(&routes, &k, &val, flags);
}

SEC("xdp")
int xdp_maps(struct xdp_md *ctx)
{
	__u32 k1 = 1, k2 = 2, k3 = 3, i;
	__u64 v = 100, *p;
	__s64 present = 0;

	/* hash, max_entries 2 */
	put(0, bpf_map_update_elem(&small_hash, &k1, &v, BPF_EXIST));
	put(1, bpf_map_update_elem(&small_hash, &k1, &v, BPF_NOEXIST));
	put(2, bpf_map_update_elem(&small_hash, &k1, &v, BPF_NOEXIST));
	v = 101;
	put(3, bpf_map_update_elem(&small_hash, &k1, &v, BPF_EXIST));
	put(4, bpf_map_update_elem(&small_hash, &k2, &v, BPF_ANY));
	put(5, bpf_map_update_elem(&small_hash, &k3, &v, BPF_ANY));
	put(6, bpf_map_update_elem(&small_hash, &k3, &v, BPF_NOEXIST));
	put(7, bpf_map_update_elem(&small_hash, &k3, &v, BPF_EXIST));
	v = 102;
	put(8, bpf_map_update_elem(&small_hash, &k1, &v, BPF_ANY));
	put(9, bpf_map_update_elem(&small_hash, &k1, &v, 8));
	put(10, bpf_map_delete_elem(&small_hash, &k3));
	put(11, bpf_map_delete_elem(&small_hash, &k2));

	/* array, max_entries 4 */
	i = 4;
	put(12, bpf_map_update_elem(&arr, &i, &v, BPF_ANY));
	i = 0;
	put(13, bpf_map_update_elem(&arr, &i, &v, BPF_NOEXIST));
	i = 3;
	put(14, bpf_map_update_elem(&arr, &i, &v, BPF_EXIST));
	i = 4;
	put(15, bpf_map_lookup_elem(&arr, &i) == 0);
	i = 0;
	put(16, bpf_map_delete_elem(&arr, &i));

	/* LRU hash, max_entries 4 */
#pragma unroll
	for (int j = 1; j <= 6; j++) {
		__u32 k = j;
		__u64 val = j * 10;

		put(16 + j, bpf_map_update_elem(&lru, &k, &val, BPF_ANY));
	}
	i = 6;
	p = bpf_map_lookup_elem(&lru, &i);
	put(23, p ? (__s64)*p : -1);
#pragma unroll
	for (int j = 1; j <= 6; j++) {
		__u32 k = j;

		if (bpf_map_lookup_elem(&lru, &k))
			present++;
		bpf_map_delete_elem(&lru, &k);
	}
	put(24, present >= 1 && present <= 4);

	/* LPM trie, max_entries 5: overlapping prefixes */
	put(25, lpm_put(8, 10, 0, 0, 0, 8, BPF_ANY));
	put(26, lpm_put(16, 10, 1, 0, 0, 16, BPF_ANY));
	put(27, lpm_put(24, 10, 1, 2, 0, 24, BPF_NOEXIST));
	put(28, lpm_put(0, 0, 0, 0, 0, 1, BPF_ANY));
	put(29, lpm_get(10, 1, 2, 3));
	put(30, lpm_get(10, 1, 9, 9));
	put(31, lpm_get(10, 9, 9, 9));
	put(32, lpm_get(11, 0, 0, 1));
	put(33, lpm_put(24, 10, 1, 2, 0, 25, BPF_NOEXIST));
	put(34, lpm_put(20, 10, 1, 16, 0, 20, BPF_EXIST));
	put(35, lpm_put(33, 10, 1, 2, 0, 33, BPF_ANY));
	put(36, lpm_put(24, 10, 1, 2, 99, 26, BPF_EXIST));
	put(37, lpm_put(32, 10, 1, 2, 3, 32, BPF_ANY));
	put(38, lpm_put(28, 10, 1, 2, 0, 28, BPF_ANY));
	{
		struct lpm_key k = { .prefixlen = 16, .addr = { 10, 1, 7, 7 } };

		put(39, bpf_map_delete_elem(&routes, &k));
		put(40, bpf_map_delete_elem(&routes, &k));
	}
	put(41, lpm_get(10, 1, 9, 9));

	/* per-CPU array: this CPU's slot */
	i = 0;
	p = bpf_map_lookup_elem(&pcpu, &i);
	if (p)
		*p += 1;
	i = 1;
	v = 7;
	put(42, bpf_map_update_elem(&pcpu, &i, &v, BPF_ANY));
	put(43, bpf_get_smp_processor_id());
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
