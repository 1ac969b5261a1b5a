// SPDX-License-Identifier: GPL-2.0
/* xdp_dynptr: dynptrs over the frame, in the style of the kernel selftests'
 * dynptr_success.c and test_xdp_dynptr.c: bpf_dynptr_from_xdp, the kfuncs
 * bpf_dynptr_slice/_slice_rdwr/_size/_adjust/_is_null/_is_rdonly/_clone and the
 * helpers bpf_dynptr_read/write/data, with their errors. (Linux 6.18 refuses
 * bpf_dynptr_slice_rdwr in an XDP program loaded for a test run, "() is not
 * allowed", so the program writes through bpf_dynptr_write.)
 *
 * dynptr_out[i] (s64):
 *  0 bpf_dynptr_from_xdp(ctx, 0)        1 bpf_dynptr_size (the frame's length)
 *  2 bpf_dynptr_from_xdp(ctx, flags 1)  3 bpf_dynptr_is_null of that one
 *  4 slice(0, 14) returned the buffer (0: a direct pointer into the frame)
 *  5 slice past the end returned NULL   6 bpf_dynptr_read of 4 bytes at 26
 *  7 the bytes read (IPv4 source address, as a u32 in memory order)
 *  8 read past the end (-E2BIG)         9 read with flags (-EINVAL)
 * 10 bpf_dynptr_write of the destination MAC (02:00:00:00:00:aa)
 * 11 bpf_dynptr_data on an xdp dynptr is NULL (1)
 * 12 after bpf_dynptr_adjust(14, size): ret        13 the byte at 0 (0x45 for IPv4)
 * 14 adjust with start > end (-EINVAL)  15 adjust past the end (-ERANGE)
 * 16 bpf_dynptr_is_rdonly              17 write with flags (-EINVAL)
 * 18 clone: ret                         19 the clone's size
 * 20 read through a NULL dynptr (-EINVAL)
 * 21 sum of the bytes of a slice of the TTL..protocol (2 bytes at 22)
 * The frame: the TTL is decremented through bpf_dynptr_write. XDP_TX when the
 * frame was long enough for all of it, else XDP_PASS.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern int bpf_dynptr_from_xdp(struct xdp_md *xdp, __u64 flags,
			       struct bpf_dynptr *ptr__uninit) __ksym;
extern void *bpf_dynptr_slice(const struct bpf_dynptr *ptr, __u32 offset,
			      void *buffer, __u32 buffer__szk) __ksym;
extern int bpf_dynptr_adjust(const struct bpf_dynptr *ptr, __u32 start, __u32 end) __ksym;
extern int bpf_dynptr_is_null(const struct bpf_dynptr *ptr) __ksym;
extern int bpf_dynptr_is_rdonly(const struct bpf_dynptr *ptr) __ksym;
extern __u32 bpf_dynptr_size(const struct bpf_dynptr *ptr) __ksym;
extern int bpf_dynptr_clone(const struct bpf_dynptr *ptr, struct bpf_dynptr *clone__init) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 24);
	__type(key, __u32);
	__type(value, __s64);
} dynptr_out SEC(".maps");

static __always_inline void put(__u32 k, __s64 v)
{
	__s64 *p = bpf_map_lookup_elem(&dynptr_out, &k);

	if (p)
		*p = v;
}

SEC("xdp")
int xdp_dynptr(struct xdp_md *ctx)
{
	struct bpf_dynptr ptr, bad, clone;
	__u8 buf[14] = {}, mac[6] = { 2, 0, 0, 0, 0, 0xaa }, two[2] = {}, ttl;
	__u8 *p, *eth;
	__u32 size, v = 0;
	int ret;

	ret = bpf_dynptr_from_xdp(ctx, 0, &ptr);
	put(0, ret);
	size = bpf_dynptr_size(&ptr);
	put(1, size);
	ret = bpf_dynptr_from_xdp(ctx, 1, &bad);
	put(2, ret);
	/* bool in the kernel: only the low byte of r0 is defined. */
	put(3, bpf_dynptr_is_null(&bad) & 0xff);

	eth = bpf_dynptr_slice(&ptr, 0, buf, sizeof(buf));
	put(4, eth == buf);
	p = bpf_dynptr_slice(&ptr, size - 4, buf, 8);
	put(5, p == NULL);

	ret = bpf_dynptr_read(&v, sizeof(v), &ptr, 26, 0);
	put(6, ret);
	put(7, v);
	put(8, bpf_dynptr_read(&v, sizeof(v), &ptr, size - 2, 0));
	put(9, bpf_dynptr_read(&v, sizeof(v), &ptr, 0, 1));
	put(10, bpf_dynptr_write(&ptr, 0, mac, sizeof(mac), 0));
	put(11, bpf_dynptr_data(&ptr, 0, 4) == NULL);
	put(16, bpf_dynptr_is_rdonly(&ptr) & 0xff);
	put(17, bpf_dynptr_write(&ptr, 0, mac, sizeof(mac), 1));
	put(20, bpf_dynptr_read(&v, sizeof(v), &bad, 0, 0));

	p = bpf_dynptr_slice(&ptr, 22, two, sizeof(two));
	if (!p)
		return XDP_PASS;
	put(21, p[0] + p[1]);

	ret = bpf_dynptr_clone(&ptr, &clone);
	put(18, ret);
	put(19, bpf_dynptr_size(&clone));
	put(14, bpf_dynptr_adjust(&clone, 10, 5));
	put(15, bpf_dynptr_adjust(&clone, 0, size + 1));
	ret = bpf_dynptr_adjust(&clone, 14, size);
	put(12, ret);
	v = 0;
	bpf_dynptr_read(&v, 1, &clone, 0, 0);
	put(13, v);

	if (bpf_dynptr_read(&ttl, 1, &ptr, 22, 0))
		return XDP_PASS;
	ttl--;
	if (bpf_dynptr_write(&ptr, 22, &ttl, 1, 0))
		return XDP_PASS;
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
