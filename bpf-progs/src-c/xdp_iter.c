// SPDX-License-Identifier: GPL-2.0
/* xdp_iter: open-coded number iterators (bpf_iter_num_new/next/destroy) through
 * the bpf_for and bpf_repeat macros of the kernel's bpf_misc.h/bpf_helpers.h,
 * in the style of the selftests' iters.c.
 *
 * iter_out[0]: sum of the frame's first min(len, 64) bytes (bpf_for over [0, n),
 *              each byte read with bpf_xdp_load_bytes)
 * iter_out[1]: number of bpf_repeat(5) rounds
 * iter_out[2]: return of bpf_iter_num_new with start > end (-EINVAL)
 * iter_out[3]: rounds of an iterator made with start > end (0)
 * iter_out[4]: return of bpf_iter_num_new over more than 1 << 23 elements (-E2BIG)
 * iter_out[5]: rounds of bpf_for(i, 10, 10) (empty range: 0)
 * iter_out[6]: sum of i over bpf_for(i, -3, 3) (signed ranges: -3)
 * Returns XDP_PASS, or XDP_DROP when the frame's first byte is 0xff.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_iter_num {
	__u64 __opaque[1];
} __attribute__((aligned(8)));

extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

/* From the kernel's tools/lib/bpf/bpf_helpers.h (libbpf 1.2+). */
#define bpf_for(i, start, end) for (						\
	struct bpf_iter_num ___it __attribute__((aligned(8),			\
						 cleanup(bpf_iter_num_destroy))),	\
	/* initialize and define destructor */					\
	*___p __attribute__((unused)) = (					\
		bpf_iter_num_new(&___it, (start), (end)),			\
		(void)bpf_iter_num_destroy, (void *)0);				\
	({								\
		int *___t = bpf_iter_num_next(&___it);				\
		(___t && ((i) = *___t, (i) >= (start) && (i) < (end)));		\
	});								\
)

#define bpf_repeat(N) for (							\
	struct bpf_iter_num ___it __attribute__((aligned(8),			\
						 cleanup(bpf_iter_num_destroy))),	\
	*___p __attribute__((unused)) = (					\
		bpf_iter_num_new(&___it, 0, (N)),				\
		(void)bpf_iter_num_destroy, (void *)0);				\
	bpf_iter_num_next(&___it);						\
)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __s64);
} iter_out SEC(".maps");

static __always_inline void put(__u32 k, __s64 v)
{
	__s64 *p = bpf_map_lookup_elem(&iter_out, &k);

	if (p)
		*p = v;
}

SEC("xdp")
int xdp_iter(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *end = (void *)(long)ctx->data_end;
	struct bpf_iter_num it;
	__s64 sum = 0, rounds = 0;
	int i, n, *v, ret;

	n = end - data;
	if (n > 64)
		n = 64;
	bpf_for(i, 0, n) {
		unsigned char b;

		if (bpf_xdp_load_bytes(ctx, i, &b, 1))
			break;
		sum += b;
	}
	put(0, sum);

	bpf_repeat(5)
		rounds++;
	put(1, rounds);

	ret = bpf_iter_num_new(&it, 7, 3);
	put(2, ret);
	rounds = 0;
	while ((v = bpf_iter_num_next(&it)))
		rounds++;
	bpf_iter_num_destroy(&it);
	put(3, rounds);

	ret = bpf_iter_num_new(&it, -1, (1 << 23));
	put(4, ret);
	bpf_iter_num_destroy(&it);

	rounds = 0;
	bpf_for(i, 10, 10)
		rounds++;
	put(5, rounds);

	sum = 0;
	bpf_for(i, -3, 3)
		sum += i;
	put(6, sum);

	if (data + 1 <= end && data[0] == 0xff)
		return XDP_DROP;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
