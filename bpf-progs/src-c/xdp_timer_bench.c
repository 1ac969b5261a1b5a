// SPDX-License-Identifier: GPL-2.0
/* xdp_timer_bench: the bpf_timer programs bench/src/bin/timers.rs measures in
 * the kernel (BPF_PROG_TEST_RUN with repeat) and in both engines, side by side.
 *
 * Configuration (cfg, ARRAY of u64, written before the runs): 0 number of
 * flows (at most MAX_FLOWS; 0 is taken as 1), 1 timeout in ns, 2 spread in ns
 * (flow i's timeout is the timeout plus (i % 1024) * spread / 1024, so the
 * expiries are spread over the wheel).
 *
 * - bench_base: the lookup of timer_one[0] and a store to it, no timer helper
 *   (the baseline the others are compared with);
 * - bench_rearm: the same plus bpf_timer_start of one timer per packet,
 *   pending from the second packet on (a re-arm), initialised on the first
 *   (every timer's init is retried until it succeeds: see bstats);
 * - bench_arm_cancel: set_callback, start then cancel of one timer per packet
 *   (an arm of an inactive timer and a cancel of a pending one; a cancel
 *   forgets the callback, as the kernel's does);
 * - bench_flows: the httperf pattern: packet n re-arms the watchdog of flow
 *   n % flows (flows: a HASH, the element inserted and its timer initialised
 *   on first sight), so after `flows` packets that many timers are armed.
 *
 * Every timer's callback records its lateness (the time it ran minus its
 * deadline, from bpf_ktime_get_ns) in late: slot i < LATE_BUCKETS counts
 * latenesses in [i, i + 1) * LATE_NS (the last slot: all beyond), slot
 * LATE_BUCKETS the largest lateness seen, LATE_BUCKETS + 1 the number of
 * callbacks. Verdict XDP_PASS.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define CLOCK_MONOTONIC 1
#define MAX_FLOWS (1 << 20)
#define LATE_BUCKETS 4096
#define LATE_NS 10000 /* 10 us */

enum { CFG_FLOWS = 0, CFG_TIMEOUT = 1, CFG_SPREAD = 2, CFG_N };

struct tstate {
	struct bpf_timer t;
	__u64 deadline;
	__u64 arms;
	__u64 inited;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CFG_N);
	__type(key, __u32);
	__type(value, __u64);
} cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tstate);
} timer_one SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FLOWS);
	__type(key, __u32);
	__type(value, struct tstate);
} timer_flows SEC(".maps");

/* Helper results: 0 inits that succeeded, 1 inits that failed with -ENOMEM
 * (the kernel allocates each timer at init, from a cache that a burst of test
 * runs empties), 2 inits that failed otherwise, 3 starts that failed. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} bstats SEC(".maps");

/* The next flow bench_flows re-arms. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} cursor SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LATE_BUCKETS + 2);
	__type(key, __u32);
	__type(value, __u64);
} late SEC(".maps");

static __always_inline __u64 cfg_get(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&cfg, &slot);

	return v ? *v : 0;
}

static int record_lateness(void *map, __u32 *key, struct tstate *s)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 lateness = now > s->deadline ? now - s->deadline : 0;
	__u32 bucket = lateness / LATE_NS;
	__u32 max_slot = LATE_BUCKETS, count_slot = LATE_BUCKETS + 1;
	__u64 *p;

	if (bucket >= LATE_BUCKETS)
		bucket = LATE_BUCKETS - 1;
	p = bpf_map_lookup_elem(&late, &bucket);
	if (p)
		__sync_fetch_and_add(p, 1);
	p = bpf_map_lookup_elem(&late, &max_slot);
	if (p && *p < lateness)
		*p = lateness;
	p = bpf_map_lookup_elem(&late, &count_slot);
	if (p)
		__sync_fetch_and_add(p, 1);
	return 0;
}

SEC("xdp")
int bench_base(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct tstate *s = bpf_map_lookup_elem(&timer_one, &k);

	if (!s)
		return XDP_ABORTED;
	s->arms++;
	return XDP_PASS;
}

static __always_inline void stat_add(__u32 slot)
{
	__u64 *p = bpf_map_lookup_elem(&bstats, &slot);

	if (p)
		*p += 1;
}

/* Initialises the timer of s unless that succeeded before. */
static __always_inline void ensure_init(struct tstate *s, void *map)
{
	long ret;

	if (s->inited)
		return;
	ret = bpf_timer_init(&s->t, map, CLOCK_MONOTONIC);
	if (ret == 0) {
		s->inited = 1;
		bpf_timer_set_callback(&s->t, record_lateness);
		stat_add(0);
	} else {
		stat_add(ret == -12 ? 1 : 2);
	}
}

static __always_inline void start(struct tstate *s, __u64 timeout)
{
	if (bpf_timer_start(&s->t, timeout, 0))
		stat_add(3);
}

SEC("xdp")
int bench_rearm(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct tstate *s = bpf_map_lookup_elem(&timer_one, &k);
	__u64 timeout;

	if (!s)
		return XDP_ABORTED;
	ensure_init(s, &timer_one);
	timeout = cfg_get(CFG_TIMEOUT);
	s->deadline = bpf_ktime_get_ns() + timeout;
	s->arms++;
	start(s, timeout);
	return XDP_PASS;
}

SEC("xdp")
int bench_arm_cancel(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct tstate *s = bpf_map_lookup_elem(&timer_one, &k);

	if (!s)
		return XDP_ABORTED;
	ensure_init(s, &timer_one);
	s->arms++;
	/* A cancel forgets the callback: each arm sets it again. */
	bpf_timer_set_callback(&s->t, record_lateness);
	start(s, 1000000000);
	bpf_timer_cancel(&s->t);
	return XDP_PASS;
}

SEC("xdp")
int bench_flows(struct xdp_md *ctx)
{
	__u32 k = 0, flow;
	__u64 *cur = bpf_map_lookup_elem(&cursor, &k);
	__u64 flows = cfg_get(CFG_FLOWS), timeout;
	struct tstate *s;

	if (!cur)
		return XDP_ABORTED;
	if (flows == 0)
		flows = 1;
	if (flows > MAX_FLOWS)
		flows = MAX_FLOWS;
	flow = *cur % flows;
	*cur += 1;
	s = bpf_map_lookup_elem(&timer_flows, &flow);
	if (!s) {
		struct tstate fresh = {};

		bpf_map_update_elem(&timer_flows, &flow, &fresh, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&timer_flows, &flow);
		if (!s)
			return XDP_ABORTED;
	}
	ensure_init(s, &timer_flows);
	timeout = cfg_get(CFG_TIMEOUT) + (flow % 1024) * (cfg_get(CFG_SPREAD) / 1024);
	s->deadline = bpf_ktime_get_ns() + timeout;
	s->arms++;
	start(s, timeout);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
