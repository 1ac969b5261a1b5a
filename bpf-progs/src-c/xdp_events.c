// SPDX-License-Identifier: GPL-2.0
/* xdp_events: a packet sampler in the style of xdp-tutorial's
 * tracing04-xdp-tcpdump and xdp-tools' xdpdump. Every run sends a header
 * (struct event_hdr) plus the first 64 bytes of the packet to user space,
 * through a PERF_EVENT_ARRAY and through a RINGBUF, and records each
 * helper's return code in ev_rets[] (the last run's) and its successes in
 * ev_ok[] (summed over runs). The packet passes unchanged.
 *
 *  0  perf_event_output(BPF_F_CURRENT_CPU | 64 packet bytes)
 *  1  perf_event_output(index 1 | 64 packet bytes)
 *  2  perf_event_output(index 7): past max_entries, -E2BIG
 *  3  perf_event_output(flag bit 60): -EINVAL
 *  4  perf_event_output(ctx length = packet length + 1): -EFAULT
 *  5  ringbuf_output(header, BPF_RB_NO_WAKEUP)
 *  6  ringbuf_output(flags 4): -EINVAL
 *  7  ringbuf_reserve(64) + submit(BPF_RB_FORCE_WAKEUP): 1, or 0 when full
 *  8  ringbuf_reserve(16) + discard: 1, or 0 when full
 *  9  ringbuf_reserve(flags 1): NULL, 0
 * 10  ringbuf_query(BPF_RB_AVAIL_DATA)
 * 11  ringbuf_query(BPF_RB_RING_SIZE)
 * 12  ringbuf_query(BPF_RB_CONS_POS)
 * 13  ringbuf_query(BPF_RB_PROD_POS)
 * 14  ringbuf_query(9): 0
 * 15  the run's sequence number (ev_seq)
 *
 * In BPF_PROG_TEST_RUN no perf event sits in perf_events, so 0 and 1 are
 * -ENOENT; 120 bytes of ring per run fill the 4096-byte ring in the 35th
 * run (34 * 120 = 4080; the next 24-byte record would need 4104).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define CAP_LEN 64

struct event_hdr {
	__u32 magic;	/* 0x45564e54, "EVNT" */
	__u16 pkt_len;	/* data_end - data */
	__u16 cap_len;	/* packet bytes after the header (perf only) */
	__u32 seq;	/* run number, from ev_seq */
	__u32 ifindex;	/* ctx->ingress_ifindex */
};

struct rb_sample {
	struct event_hdr hdr;
	__u8 bytes[48];	/* the packet's first 48 bytes, zero when shorter */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __s64);
} ev_rets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} ev_ok SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ev_seq SEC(".maps");

static __always_inline void record(__u32 i, __s64 ret, int ok)
{
	__s64 *r = bpf_map_lookup_elem(&ev_rets, &i);
	__u64 *n = bpf_map_lookup_elem(&ev_ok, &i);

	if (r)
		*r = ret;
	if (n && ok)
		*n += 1;
}

SEC("xdp")
int xdp_events(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 pkt_len = data_end - data;
	__u64 cap = pkt_len < CAP_LEN ? pkt_len : CAP_LEN;
	struct event_hdr hdr = {};
	struct rb_sample *s;
	__u32 zero = 0, *seq;
	long ret;

	seq = bpf_map_lookup_elem(&ev_seq, &zero);
	if (!seq)
		return XDP_ABORTED;
	*seq += 1;
	hdr.magic = 0x45564e54;
	hdr.pkt_len = pkt_len;
	hdr.cap_len = cap;
	hdr.seq = *seq;
	hdr.ifindex = ctx->ingress_ifindex;

	ret = bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU | (cap << 32),
				    &hdr, sizeof(hdr));
	record(0, ret, ret == 0);
	ret = bpf_perf_event_output(ctx, &perf_events, 1 | (cap << 32), &hdr, sizeof(hdr));
	record(1, ret, ret == 0);
	ret = bpf_perf_event_output(ctx, &perf_events, 7, &hdr, sizeof(hdr));
	record(2, ret, ret == 0);
	ret = bpf_perf_event_output(ctx, &perf_events, 1ULL << 60, &hdr, sizeof(hdr));
	record(3, ret, ret == 0);
	ret = bpf_perf_event_output(ctx, &perf_events,
				    BPF_F_CURRENT_CPU | ((pkt_len + 1) << 32), &hdr, 4);
	record(4, ret, ret == 0);

	ret = bpf_ringbuf_output(&rb_events, &hdr, sizeof(hdr), BPF_RB_NO_WAKEUP);
	record(5, ret, ret == 0);
	ret = bpf_ringbuf_output(&rb_events, &hdr, sizeof(hdr), 4);
	record(6, ret, ret == 0);

	s = bpf_ringbuf_reserve(&rb_events, sizeof(*s), 0);
	if (s) {
		s->hdr = hdr;
		if (data + sizeof(s->bytes) <= data_end)
			__builtin_memcpy(s->bytes, data, sizeof(s->bytes));
		else
			__builtin_memset(s->bytes, 0, sizeof(s->bytes));
		bpf_ringbuf_submit(s, BPF_RB_FORCE_WAKEUP);
	}
	record(7, s != 0, s != 0);

	s = bpf_ringbuf_reserve(&rb_events, 16, 0);
	if (s) {
		s->hdr = hdr;
		bpf_ringbuf_discard(s, 0);
	}
	record(8, s != 0, s != 0);

	s = bpf_ringbuf_reserve(&rb_events, 16, 1);
	if (s)
		bpf_ringbuf_discard(s, 0);
	record(9, s != 0, s != 0);

	record(10, bpf_ringbuf_query(&rb_events, BPF_RB_AVAIL_DATA), 1);
	record(11, bpf_ringbuf_query(&rb_events, BPF_RB_RING_SIZE), 1);
	record(12, bpf_ringbuf_query(&rb_events, BPF_RB_CONS_POS), 1);
	record(13, bpf_ringbuf_query(&rb_events, BPF_RB_PROD_POS), 1);
	record(14, bpf_ringbuf_query(&rb_events, 9), 1);
	record(15, hdr.seq, 1);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
