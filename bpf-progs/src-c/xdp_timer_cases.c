// SPDX-License-Identifier: GPL-2.0
/* xdp_timer_cases: one small program per bpf_timer semantic case, each
 * writing what the helpers returned and what its callbacks did into maps, so
 * a dump of every map after the timers had time to fire shows the answers.
 *
 * Maps:
 * - rc (ARRAY, 16 x s64): the return codes of the program's helper calls, in
 *   the order each case lists; slots 8.. are written by callbacks;
 * - cb (ARRAY, 4 x u64): callback counts (slot 0: every callback; slot 1: the
 *   re-arming callback's count, slot 2: the ABS callbacks);
 * - htimers (HASH, 4), atimers (ARRAY, 4), ltimers (LRU_HASH, 1 entry) and the
 *   inner array of outer (ARRAY_OF_MAPS): values holding a struct bpf_timer.
 *
 * Each program runs on a fresh load, once; every timer it starts is due
 * within 2 ms (or cancelled), so waiting some tens of milliseconds after the
 * run leaves nothing pending. Verdict XDP_PASS.
 *
 * Cases (rc slots):
 * - timer_init_twice: 0 init MONOTONIC, 1 init again (-EBUSY), 2 init with
 *   clock PROCESS_CPUTIME (-EINVAL), 3 init REALTIME, 4 init BOOTTIME, 5 init
 *   with a flag bit above the clock id (-EINVAL);
 * - timer_start_before_cb: 0 init, 1 start before set_callback (-EINVAL),
 *   2 set_callback, 3 start 1 ms (fires once);
 * - timer_cancel_inactive: 0 cancel before init (-EINVAL), 1 init, 2 cancel
 *   of an initialised timer never started (0), 3 set_callback, 4 start 1 s,
 *   5 cancel (1), 6 cancel again (0);
 * - timer_cancel_in_cb: 0-2 init, set_callback, start 1 ms; the callback
 *   cancels its own timer into slot 8 (-EDEADLK);
 * - timer_rearm_in_cb: 0-2 as above; the callback re-arms itself 1 ms later
 *   until it ran 3 times (cb[1] = 3), its start results in slots 8-9;
 * - timer_abs: 0-1 init, set_callback on atimers[0], 2 start with
 *   BPF_F_TIMER_ABS at now + 1 ms; 3-5 the same on atimers[1] at an absolute
 *   time in the past (fires at once); 6 start with an unknown flag bit
 *   (-EINVAL); 7 start BPF_F_TIMER_CPU_PIN relative 1 ms on atimers[2];
 * - timer_update_pending: htimers[1] armed 1 ms, then updated from the
 *   program (0-3: insert, init, set_callback, start; 4: update; 5: cancel on
 *   the new value: its timer was freed, -EINVAL); the same on atimers[0] in
 *   slots 6-10. Callbacks: none;
 * - timer_delete_pending: htimers[2] armed 1 ms, then deleted (0-4); no
 *   callback;
 * - timer_lru_evict: ltimers[1] armed 1 ms (0-3), then key 2 inserted (4),
 *   which evicts key 1 from the single-entry LRU; no callback; 5: lookup of
 *   key 1 afterwards (0: gone);
 * - timer_inner_map: the inner array's element 0 (through outer[0]) armed
 *   1 ms with the inner map as the timer's map (0-2), fires once;
 * - timer_restart_after_cancel: 0-2 init, set_callback, start 1 s; 3 cancel
 *   (1), which also forgets the callback: 4 start (-EINVAL), 5 cancel (0),
 *   6 set_callback, 7 start 1 ms (fires once);
 * - timer_huge_timeout: relative timeouts of ~0 ns (atimers[0]) and 2^62 ns
 *   ([1]) are accepted and do not fire; 0 ns ([2]) fires at once (0-8).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
#define CLOCK_PROCESS_CPUTIME_ID 2
#define CLOCK_BOOTTIME 7
/* Named as in newer <linux/bpf.h> (enum values, so no #ifndef). */
#define TIMER_ABS (1ULL << 0)
#define TIMER_CPU_PIN (1ULL << 1)

#define MS 1000000ULL

struct elem {
	struct bpf_timer t;
	__u64 fired;
	__u64 mark;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __s64);
} rc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} cb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct elem);
} htimers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct elem);
} atimers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct elem);
} ltimers SEC(".maps");

struct inner_timers {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct elem);
};

struct inner_timers inner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct inner_timers);
} outer SEC(".maps") = {
	.values = { [0] = &inner },
};

static __always_inline void put_rc(__u32 slot, __s64 v)
{
	__s64 *p = bpf_map_lookup_elem(&rc, &slot);

	if (p)
		*p = v;
}

static __always_inline void count(__u32 slot)
{
	__u64 *p = bpf_map_lookup_elem(&cb, &slot);

	if (p)
		*p += 1;
}

/* Counts every callback and marks the element it fired for. */
static int fired_cb(void *map, __u32 *key, struct elem *e)
{
	count(0);
	e->fired += 1;
	return 0;
}

SEC("xdp")
int timer_init_twice(struct xdp_md *ctx)
{
	__u32 k0 = 0, k1 = 1, k2 = 2, k3 = 3;
	struct elem *a = bpf_map_lookup_elem(&atimers, &k0);
	struct elem *b = bpf_map_lookup_elem(&atimers, &k1);
	struct elem *c = bpf_map_lookup_elem(&atimers, &k2);
	struct elem *d = bpf_map_lookup_elem(&atimers, &k3);

	if (!a || !b || !c || !d)
		return XDP_ABORTED;
	put_rc(0, bpf_timer_init(&a->t, &atimers, CLOCK_MONOTONIC));
	put_rc(1, bpf_timer_init(&a->t, &atimers, CLOCK_MONOTONIC));
	put_rc(2, bpf_timer_init(&b->t, &atimers, CLOCK_PROCESS_CPUTIME_ID));
	put_rc(3, bpf_timer_init(&c->t, &atimers, CLOCK_REALTIME));
	put_rc(4, bpf_timer_init(&d->t, &atimers, CLOCK_BOOTTIME));
	put_rc(5, bpf_timer_init(&b->t, &atimers, CLOCK_MONOTONIC | (1ULL << 8)));
	return XDP_PASS;
}

SEC("xdp")
int timer_start_before_cb(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct elem *e = bpf_map_lookup_elem(&atimers, &k);

	if (!e)
		return XDP_ABORTED;
	put_rc(0, bpf_timer_init(&e->t, &atimers, CLOCK_MONOTONIC));
	put_rc(1, bpf_timer_start(&e->t, MS, 0));
	put_rc(2, bpf_timer_set_callback(&e->t, fired_cb));
	put_rc(3, bpf_timer_start(&e->t, MS, 0));
	return XDP_PASS;
}

SEC("xdp")
int timer_cancel_inactive(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct elem *e = bpf_map_lookup_elem(&atimers, &k);

	if (!e)
		return XDP_ABORTED;
	put_rc(0, bpf_timer_cancel(&e->t));
	put_rc(1, bpf_timer_init(&e->t, &atimers, CLOCK_MONOTONIC));
	put_rc(2, bpf_timer_cancel(&e->t));
	put_rc(3, bpf_timer_set_callback(&e->t, fired_cb));
	put_rc(4, bpf_timer_start(&e->t, 1000 * MS, 0));
	put_rc(5, bpf_timer_cancel(&e->t));
	put_rc(6, bpf_timer_cancel(&e->t));
	return XDP_PASS;
}

static int cancel_self_cb(void *map, __u32 *key, struct elem *e)
{
	count(0);
	e->fired += 1;
	put_rc(8, bpf_timer_cancel(&e->t));
	return 0;
}

SEC("xdp")
int timer_cancel_in_cb(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct elem *e = bpf_map_lookup_elem(&atimers, &k);

	if (!e)
		return XDP_ABORTED;
	put_rc(0, bpf_timer_init(&e->t, &atimers, CLOCK_MONOTONIC));
	put_rc(1, bpf_timer_set_callback(&e->t, cancel_self_cb));
	put_rc(2, bpf_timer_start(&e->t, MS, 0));
	return XDP_PASS;
}

static int rearm_cb(void *map, __u32 *key, struct elem *e)
{
	count(0);
	count(1);
	e->fired += 1;
	if (e->fired < 3)
		put_rc(7 + e->fired, bpf_timer_start(&e->t, MS, 0));
	return 0;
}

SEC("xdp")
int timer_rearm_in_cb(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct elem *e = bpf_map_lookup_elem(&atimers, &k);

	if (!e)
		return XDP_ABORTED;
	put_rc(0, bpf_timer_init(&e->t, &atimers, CLOCK_MONOTONIC));
	put_rc(1, bpf_timer_set_callback(&e->t, rearm_cb));
	put_rc(2, bpf_timer_start(&e->t, MS, 0));
	return XDP_PASS;
}

static int abs_cb(void *map, __u32 *key, struct elem *e)
{
	count(0);
	count(2);
	e->fired += 1;
	return 0;
}

SEC("xdp")
int timer_abs(struct xdp_md *ctx)
{
	__u32 k0 = 0, k1 = 1, k2 = 2;
	struct elem *a = bpf_map_lookup_elem(&atimers, &k0);
	struct elem *b = bpf_map_lookup_elem(&atimers, &k1);
	struct elem *c = bpf_map_lookup_elem(&atimers, &k2);

	if (!a || !b || !c)
		return XDP_ABORTED;
	put_rc(0, bpf_timer_init(&a->t, &atimers, CLOCK_MONOTONIC));
	put_rc(1, bpf_timer_set_callback(&a->t, abs_cb));
	put_rc(2, bpf_timer_start(&a->t, bpf_ktime_get_ns() + MS, TIMER_ABS));
	put_rc(3, bpf_timer_init(&b->t, &atimers, CLOCK_MONOTONIC));
	put_rc(4, bpf_timer_set_callback(&b->t, abs_cb));
	put_rc(5, bpf_timer_start(&b->t, 1000, TIMER_ABS));
	put_rc(6, bpf_timer_start(&b->t, MS, 1ULL << 5));
	put_rc(7, bpf_timer_init(&c->t, &atimers, CLOCK_MONOTONIC));
	put_rc(8, bpf_timer_set_callback(&c->t, abs_cb));
	put_rc(9, bpf_timer_start(&c->t, MS, TIMER_CPU_PIN));
	return XDP_PASS;
}

SEC("xdp")
int timer_update_pending(struct xdp_md *ctx)
{
	__u32 k = 1, k0 = 0;
	struct elem zero = {}, marked = { .mark = 7 };
	struct elem *e;

	put_rc(0, bpf_map_update_elem(&htimers, &k, &zero, BPF_NOEXIST));
	e = bpf_map_lookup_elem(&htimers, &k);
	if (!e)
		return XDP_ABORTED;
	put_rc(1, bpf_timer_init(&e->t, &htimers, CLOCK_MONOTONIC));
	put_rc(2, bpf_timer_set_callback(&e->t, fired_cb));
	put_rc(3, bpf_timer_start(&e->t, MS, 0));
	put_rc(4, bpf_map_update_elem(&htimers, &k, &marked, BPF_EXIST));
	e = bpf_map_lookup_elem(&htimers, &k);
	if (!e)
		return XDP_ABORTED;
	put_rc(5, bpf_timer_cancel(&e->t));

	e = bpf_map_lookup_elem(&atimers, &k0);
	if (!e)
		return XDP_ABORTED;
	put_rc(6, bpf_timer_init(&e->t, &atimers, CLOCK_MONOTONIC));
	put_rc(7, bpf_timer_set_callback(&e->t, fired_cb));
	put_rc(8, bpf_timer_start(&e->t, MS, 0));
	put_rc(9, bpf_map_update_elem(&atimers, &k0, &marked, BPF_ANY));
	put_rc(10, bpf_timer_cancel(&e->t));
	return XDP_PASS;
}

SEC("xdp")
int timer_delete_pending(struct xdp_md *ctx)
{
	__u32 k = 2;
	struct elem zero = {};
	struct elem *e;

	put_rc(0, bpf_map_update_elem(&htimers, &k, &zero, BPF_NOEXIST));
	e = bpf_map_lookup_elem(&htimers, &k);
	if (!e)
		return XDP_ABORTED;
	put_rc(1, bpf_timer_init(&e->t, &htimers, CLOCK_MONOTONIC));
	put_rc(2, bpf_timer_set_callback(&e->t, fired_cb));
	put_rc(3, bpf_timer_start(&e->t, MS, 0));
	put_rc(4, bpf_map_delete_elem(&htimers, &k));
	return XDP_PASS;
}

SEC("xdp")
int timer_lru_evict(struct xdp_md *ctx)
{
	__u32 k1 = 1, k2 = 2;
	struct elem zero = {};
	struct elem *e;

	if (bpf_map_update_elem(&ltimers, &k1, &zero, BPF_NOEXIST))
		return XDP_ABORTED;
	e = bpf_map_lookup_elem(&ltimers, &k1);
	if (!e)
		return XDP_ABORTED;
	put_rc(0, bpf_timer_init(&e->t, &ltimers, CLOCK_MONOTONIC));
	put_rc(1, bpf_timer_set_callback(&e->t, fired_cb));
	put_rc(2, bpf_timer_start(&e->t, MS, 0));
	put_rc(3, e->fired);
	put_rc(4, bpf_map_update_elem(&ltimers, &k2, &zero, BPF_NOEXIST));
	put_rc(5, bpf_map_lookup_elem(&ltimers, &k1) != 0);
	return XDP_PASS;
}

SEC("xdp")
int timer_inner_map(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct elem *e;
	void *m = bpf_map_lookup_elem(&outer, &k);

	if (!m)
		return XDP_ABORTED;
	e = bpf_map_lookup_elem(m, &k);
	if (!e)
		return XDP_ABORTED;
	put_rc(0, bpf_timer_init(&e->t, m, CLOCK_MONOTONIC));
	put_rc(1, bpf_timer_set_callback(&e->t, fired_cb));
	put_rc(2, bpf_timer_start(&e->t, MS, 0));
	return XDP_PASS;
}

SEC("xdp")
int timer_restart_after_cancel(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct elem *e = bpf_map_lookup_elem(&atimers, &k);

	if (!e)
		return XDP_ABORTED;
	put_rc(0, bpf_timer_init(&e->t, &atimers, CLOCK_MONOTONIC));
	put_rc(1, bpf_timer_set_callback(&e->t, fired_cb));
	put_rc(2, bpf_timer_start(&e->t, 1000 * MS, 0));
	put_rc(3, bpf_timer_cancel(&e->t));
	put_rc(4, bpf_timer_start(&e->t, MS, 0));
	put_rc(5, bpf_timer_cancel(&e->t));
	put_rc(6, bpf_timer_set_callback(&e->t, fired_cb));
	put_rc(7, bpf_timer_start(&e->t, MS, 0));
	return XDP_PASS;
}

SEC("xdp")
int timer_huge_timeout(struct xdp_md *ctx)
{
	__u32 k0 = 0, k1 = 1, k2 = 2;
	struct elem *a = bpf_map_lookup_elem(&atimers, &k0);
	struct elem *b = bpf_map_lookup_elem(&atimers, &k1);
	struct elem *c = bpf_map_lookup_elem(&atimers, &k2);

	if (!a || !b || !c)
		return XDP_ABORTED;
	put_rc(0, bpf_timer_init(&a->t, &atimers, CLOCK_MONOTONIC));
	put_rc(1, bpf_timer_set_callback(&a->t, fired_cb));
	put_rc(2, bpf_timer_start(&a->t, ~0ULL, 0));
	put_rc(3, bpf_timer_init(&b->t, &atimers, CLOCK_MONOTONIC));
	put_rc(4, bpf_timer_set_callback(&b->t, fired_cb));
	put_rc(5, bpf_timer_start(&b->t, 1ULL << 62, 0));
	put_rc(6, bpf_timer_init(&c->t, &atimers, CLOCK_MONOTONIC));
	put_rc(7, bpf_timer_set_callback(&c->t, fired_cb));
	put_rc(8, bpf_timer_start(&c->t, 0, 0));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
