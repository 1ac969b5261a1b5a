// SPDX-License-Identifier: GPL-2.0
/* xdp_dynptr_frags: dynptrs over a multi-buffer frame (xdp.frags), in the
 * manner of the kernel selftests' test_xdp_dynptr.c on 9000-byte frames, whose
 * linear part holds 3520 bytes, then fragments of 4096 and 1384 bytes
 * (boundaries at 3520 and 7616). bpf_dynptr_from_xdp, bpf_dynptr_read and
 * bpf_dynptr_write within a fragment and across each boundary, past the end,
 * and bpf_dynptr_slice (read-only: Linux 6.18 refuses _rdwr in a program
 * loaded for a test run) within a fragment (a direct pointer) and across a
 * boundary (copied into the buffer).
 *
 * out[i] (s64):
 *  0 bpf_dynptr_from_xdp          1 bpf_dynptr_size (the whole frame)
 *  2/3 read 4 at 3510: ret, value       4/5/6 read 16 at 3512 (across 3520)
 *  7/8 read 8 at 5000 (in fragment 0)   9/10/11 read 16 at 7606 (across 7616)
 * 12 write 8 at 3516 (across 3520)     13 write 8 at 7612 (across 7616)
 * 14 write 8 at size - 4 (-E2BIG)      15/16 the two writes read back
 * 17/18 slice 8 at 3516: into the buffer?, value
 * 19/20 slice 8 at 5000: not NULL, value (the kernel returns a pointer into
 *       the fragment; the runtime copies into the buffer, since fragments are
 *       not program memory: which pointer it is is not recorded)
 * 21 slice 8 at size - 4 is NULL       22 read 1 at size (-E2BIG)
 * 23 write 4 at 8990 (last fragment)   24 read back
 * Verdict XDP_TX (the frame, with the writes, is the output).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern int bpf_dynptr_from_xdp(struct xdp_md *xdp, __u64 flags,
			       struct bpf_dynptr *ptr__uninit) __ksym;
extern void *bpf_dynptr_slice(const struct bpf_dynptr *ptr, __u32 offset,
			      void *buffer, __u32 buffer__szk) __ksym;
extern __u32 bpf_dynptr_size(const struct bpf_dynptr *ptr) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 32);
	__type(key, __u32);
	__type(value, __s64);
} out SEC(".maps");

static __always_inline void put(__u32 k, __s64 v)
{
	__s64 *p = bpf_map_lookup_elem(&out, &k);

	if (p)
		*p = v;
}

SEC("xdp.frags")
int xdp_dynptr_frags(struct xdp_md *ctx)
{
	struct bpf_dynptr ptr;
	__u64 a = 0x1122334455667788ULL, b = 0x99aabbccddeeff00ULL, w[2] = {}, v = 0;
	__u8 buf[8] = {};
	__u32 size, four = 0xdeadbeef, r4 = 0;
	__u8 *p;
	int ret;

	ret = bpf_dynptr_from_xdp(ctx, 0, &ptr);
	put(0, ret);
	if (ret)
		return XDP_PASS;
	size = bpf_dynptr_size(&ptr);
	put(1, size);

	put(2, bpf_dynptr_read(&r4, 4, &ptr, 3510, 0));
	put(3, r4);
	put(4, bpf_dynptr_read(w, 16, &ptr, 3512, 0));
	put(5, w[0]);
	put(6, w[1]);
	put(7, bpf_dynptr_read(&v, 8, &ptr, 5000, 0));
	put(8, v);
	w[0] = w[1] = 0;
	put(9, bpf_dynptr_read(w, 16, &ptr, 7606, 0));
	put(10, w[0]);
	put(11, w[1]);

	put(12, bpf_dynptr_write(&ptr, 3516, &a, 8, 0));
	put(13, bpf_dynptr_write(&ptr, 7612, &b, 8, 0));
	put(14, bpf_dynptr_write(&ptr, size - 4, &a, 8, 0));
	v = 0;
	bpf_dynptr_read(&v, 8, &ptr, 3516, 0);
	put(15, v);
	v = 0;
	bpf_dynptr_read(&v, 8, &ptr, 7612, 0);
	put(16, v);

	p = bpf_dynptr_slice(&ptr, 3516, buf, sizeof(buf));
	put(17, p == buf);
	if (p)
		put(18, *(__u64 *)p);
	p = bpf_dynptr_slice(&ptr, 5000, buf, sizeof(buf));
	put(19, p != NULL);
	if (p)
		put(20, p[0] | (__u64)p[7] << 8);
	p = bpf_dynptr_slice(&ptr, size - 4, buf, sizeof(buf));
	put(21, p == NULL);
	put(22, bpf_dynptr_read(&r4, 1, &ptr, size, 0));
	put(23, bpf_dynptr_write(&ptr, 8990, &four, 4, 0));
	r4 = 0;
	bpf_dynptr_read(&r4, 4, &ptr, 8990, 0);
	put(24, r4);
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
