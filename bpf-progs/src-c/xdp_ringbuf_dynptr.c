// SPDX-License-Identifier: GPL-2.0
/* xdp_ringbuf_dynptr: the ring buffer dynptr helpers and the dynptr helpers, in the
 * manner of the kernel selftests' dynptr_success.c. `results` (u64 slots):
 * 0 bpf_ringbuf_reserve_dynptr's return; 1 bpf_dynptr_write of the frame's
 * first 16 bytes; 2 a write past the end (-E2BIG); 3 a read back and 4-5 the
 * bytes read; 6 whether bpf_dynptr_data gave a pointer, 7 the word read
 * through it (with bpf_probe_read_kernel); 8 a read with flags (-EINVAL); then the record is submitted.
 * 9 a second reservation discarded; 10 a reservation with flags (-EINVAL)
 * and 11 a read from the null dynptr it leaves (-EINVAL), whose discard does
 * nothing; 12 a reservation larger than the ring (-EINVAL); 13 the ring's
 * available bytes; 14 bpf_dynptr_from_mem over a map value, 15 a write to it,
 * 16 a read past its end (-E2BIG), 17 the value's first word. XDP_PASS.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 20);
	__type(key, __u32);
	__type(value, __u64);
} results SEC(".maps");

struct buf {
	__u64 w[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct buf);
} local SEC(".maps");

static __always_inline void put(__u32 k, __u64 v)
{
	__u64 *slot = bpf_map_lookup_elem(&results, &k);

	if (slot)
		*slot = v;
}

SEC("xdp")
int xdp_ringbuf_dynptr(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct bpf_dynptr d, e, n, l;
	__u64 back[2] = {};
	__u32 zero = 0;
	struct buf *v;
	__u64 *p;

	__u64 head[2];

	if (data + 16 > data_end)
		return XDP_DROP;
	__builtin_memcpy(head, data, 16);

	put(0, (__u64)bpf_ringbuf_reserve_dynptr(&ring, 24, 0, &d));
	put(1, (__u64)bpf_dynptr_write(&d, 0, head, 16, 0));
	put(2, (__u64)bpf_dynptr_write(&d, 16, head, 16, 0));
	put(3, (__u64)bpf_dynptr_read(back, 16, &d, 0, 0));
	put(4, back[0]);
	put(5, back[1]);
	p = bpf_dynptr_data(&d, 8, 8);
	put(6, p != 0);
	if (p) {
		/* Read through the pointer with a helper: the runtime's analysis
		 * does not type bpf_dynptr_data's memory, so a direct access
		 * would be checked at run time, not proven. */
		__u64 w = 0;

		bpf_probe_read_kernel(&w, 8, p);
		put(7, w);
	}
	put(8, (__u64)bpf_dynptr_read(back, 8, &d, 0, 1));
	bpf_ringbuf_submit_dynptr(&d, 0);

	put(9, (__u64)bpf_ringbuf_reserve_dynptr(&ring, 8, 0, &e));
	bpf_ringbuf_discard_dynptr(&e, 0);
	put(10, (__u64)bpf_ringbuf_reserve_dynptr(&ring, 8, 1, &n));
	put(11, (__u64)bpf_dynptr_read(back, 8, &n, 0, 0));
	bpf_ringbuf_discard_dynptr(&n, 0);
	put(12, (__u64)bpf_ringbuf_reserve_dynptr(&ring, 8192, 0, &n));
	bpf_ringbuf_discard_dynptr(&n, 0);
	put(13, bpf_ringbuf_query(&ring, BPF_RB_AVAIL_DATA));

	v = bpf_map_lookup_elem(&local, &zero);
	if (!v)
		return XDP_PASS;
	put(14, (__u64)bpf_dynptr_from_mem(v, sizeof(*v), 0, &l));
	put(15, (__u64)bpf_dynptr_write(&l, 8, head, 8, 0));
	put(16, (__u64)bpf_dynptr_read(back, 16, &l, 24, 0));
	put(17, v->w[1]);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
