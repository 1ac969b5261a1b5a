// SPDX-License-Identifier: GPL-2.0
/* xdp_subprog: bpf-to-bpf calls, global data and atomics.
 *
 * - static __noinline functions three levels deep, passing pointers to the
 *   caller's stack and the packet;
 * - .rodata configuration (const volatile), .data and .bss globals;
 * - atomics on a map value and on globals: fetch-add with the result unused
 *   (BPF_XADD, valid for -mcpu=v1/v2); with -mcpu=v3 also fetch-add/or/and/
 *   xor with the result used, xchg and cmpxchg (CPU_VERSION below);
 * - a string constant (bpf_trace_printk), giving .rodata.str1.1.
 *
 * Verdict: XDP_PASS for frames of at least cfg_min_len bytes, else XDP_DROP.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* clang >= 15 defines __BPF_CPU_VERSION__ from -mcpu; clang 14 does not, so
 * the Makefile and build.rs also pass -DXDP_CPU_VERSION=N. */
#if defined(__BPF_CPU_VERSION__)
#define CPU_VERSION __BPF_CPU_VERSION__
#elif defined(XDP_CPU_VERSION)
#define CPU_VERSION XDP_CPU_VERSION
#else
#define CPU_VERSION 1
#endif

/* .rodata: the loader may rewrite these before load. */
const volatile __u32 cfg_min_len = 14;
const volatile __u32 cfg_mult = 3;

/* .data */
__u64 data_counter = 100;
__u32 data_last_len = 0xffffffff;

/* .bss */
__u64 bss_packets;
__u64 bss_bytes;
__u64 bss_sum;
__u64 bss_fetch[8];

struct stats {
	__u64 packets;
	__u64 bytes;
	__u32 len32;
	__u32 flags32;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct stats);
} sub_stats SEC(".maps");

struct hdr_summary {
	__u32 len;
	__u32 sum;		/* sum of the first bytes, weighted */
	__u16 proto;		/* EtherType as read, network order */
	__u16 pad;
};

/* Level 3: sums up to 16 bytes of a stack buffer. */
static __noinline __u32 sum_buf(const __u8 *buf, __u32 n)
{
	__u32 s = 0;
	int i;

	for (i = 0; i < 16; i++) {
		if (i >= n)
			break;
		s = s * cfg_mult + buf[i];
	}
	return s;
}

/* Level 2: copies the first bytes of the frame to the stack, fills *out. */
static __noinline int summarise(struct xdp_md *ctx, struct hdr_summary *out)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 buf[16] = {};
	__u32 n = 0;
	int i;

	for (i = 0; i < 16; i++) {
		__u8 *p = data + i;

		if ((void *)(p + 1) > data_end)
			break;
		buf[i] = *p;
		n++;
	}
	out->len = data_end - data;
	out->sum = sum_buf(buf, n);
	out->proto = n >= 14 ? (__u16)(buf[12] | buf[13] << 8) : 0;
	return n;
}

/* Level 1: updates the map value and globals. */
static __noinline int account(struct xdp_md *ctx, __u64 *total)
{
	struct hdr_summary hs = {};
	struct stats *st;
	__u32 key = 0;
	int n;

	n = summarise(ctx, &hs);
	st = bpf_map_lookup_elem(&sub_stats, &key);
	if (!st)
		return -1;

	/* Result unused: BPF_XADD. */
	__sync_fetch_and_add(&st->packets, 1);
	__sync_fetch_and_add(&st->bytes, hs.len);
	__sync_fetch_and_add(&bss_packets, 1);
	__sync_fetch_and_add(&bss_bytes, hs.len);
	__sync_fetch_and_add(&data_counter, 2);
	bss_sum += hs.sum;
	data_last_len = hs.len;

#if CPU_VERSION >= 3
	/* Results used: BPF_FETCH forms, xchg and cmpxchg (64 and 32 bit). */
	bss_fetch[0] = __sync_fetch_and_add(&st->bytes, 0);
	bss_fetch[1] = __sync_fetch_and_or(&st->flags32, 1u << (hs.len & 31));
	bss_fetch[2] = __sync_fetch_and_and(&st->flags32, 0x0ffffff0u);
	bss_fetch[3] = __sync_fetch_and_xor(&st->flags32, 0x5a5a5a5au);
	bss_fetch[4] = __sync_lock_test_and_set(&st->len32, hs.len);
	bss_fetch[5] = __sync_val_compare_and_swap(&st->len32, hs.len, hs.len * 2);
	bss_fetch[6] = __sync_val_compare_and_swap(&data_counter, 0, 1);
	bss_fetch[7] = __sync_fetch_and_add(&bss_sum, 1);
#else
	/* v1/v2 have only BPF_XADD; the 32-bit form too. */
	__sync_fetch_and_add(&st->flags32, 1u << (hs.len & 31));
	st->len32 = hs.len;
#endif
	*total = st->packets;
	return n;
}

SEC("xdp")
int xdp_subprog(struct xdp_md *ctx)
{
	__u64 total = 0;
	int n;

	n = account(ctx, &total);
	if (n < 0)
		return XDP_ABORTED;
	bpf_trace_printk("xdp_subprog: %d bytes, total %llu\n",
			 sizeof("xdp_subprog: %d bytes, total %llu\n"), n, total);
	if (ctx->data_end - ctx->data < cfg_min_len)
		return XDP_DROP;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
