// SPDX-License-Identifier: GPL-2.0
/* xdp_timer_users: per-user typed timers in the style of seed 000 (a network
 * function with a fixed set of timer types, at most one active timer of
 * each type per user, an expiry callback and an expiry context per type).
 *
 * Timer types, each a HASH keyed by user (the IPv4 source address, network
 * order) whose value holds the timer and its expiry context:
 * - T_LOGIN_FORGET (login_timers): forget a user whose login did not
 *   complete; context: user, type, login attempts;
 * - T_SESSION_IDLE (session_timers): end an idle session; context: user,
 *   type, idle timeout in ms, packets seen in the session.
 *
 * The operation comes from the frame: an IPv4 UDP frame to port
 * USER_PORT_BASE + 2 * type starts the timer of that type for the user
 * (re-arming it when it is active), to USER_PORT_BASE + 2 * type + 1 stops
 * it. The expiry callbacks write expired[{user, type}] = {count, context
 * word (attempts or packets)} and delete the user's element, so a new start
 * begins with a fresh context.
 *
 * op_rc (ARRAY of s64, 2 per type): the last start and stop results
 * (start: bpf_timer_start's; stop: bpf_timer_cancel's, -ENOENT when the user
 * had no timer of that type). Verdict XDP_PASS; frames that are not such
 * UDP frames are passed untouched.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define CLOCK_MONOTONIC 1
#define ENOENT 2
#define MS 1000000ULL
#define USER_PORT_BASE 7000

enum timer_type { T_LOGIN_FORGET = 0, T_SESSION_IDLE = 1, NUM_TIMER_TYPES };

/* Long enough that every frame of a test's sequence (one test run each, on a
 * loaded machine) finds the timers it started still pending. */
#define LOGIN_FORGET_NS (2000 * MS)
#define SESSION_IDLE_MS 2500

struct login_ctx {
	struct bpf_timer timer;
	__u32 user;
	__u32 type;
	__u32 attempts;
	__u32 pad;
};

struct session_ctx {
	struct bpf_timer timer;
	__u32 user;
	__u32 type;
	__u32 idle_ms;
	__u32 packets;
};

struct expired_key {
	__u32 user;
	__u32 type;
};

struct expired_val {
	__u64 count;
	__u64 context;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct login_ctx);
} login_timers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct session_ctx);
} session_timers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512);
	__type(key, struct expired_key);
	__type(value, struct expired_val);
} expired SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * NUM_TIMER_TYPES);
	__type(key, __u32);
	__type(value, __s64);
} op_rc SEC(".maps");

static __always_inline void note_expiry(__u32 user, __u32 type, __u64 context)
{
	struct expired_key k = { .user = user, .type = type };
	struct expired_val *v = bpf_map_lookup_elem(&expired, &k);

	if (v) {
		v->count++;
		v->context = context;
	} else {
		struct expired_val fresh = { .count = 1, .context = context };

		bpf_map_update_elem(&expired, &k, &fresh, BPF_NOEXIST);
	}
}

static int login_forget(void *map, __u32 *user, struct login_ctx *c)
{
	note_expiry(c->user, c->type, c->attempts);
	bpf_map_delete_elem(map, user);
	return 0;
}

static int session_idle(void *map, __u32 *user, struct session_ctx *c)
{
	note_expiry(c->user, c->type, c->packets);
	bpf_map_delete_elem(map, user);
	return 0;
}

static __always_inline void put_rc(__u32 slot, __s64 v)
{
	__s64 *p = bpf_map_lookup_elem(&op_rc, &slot);

	if (p)
		*p = v;
}

/* TIMER_START(type) for the current user: the context is created on the
 * first start and updated on every later one. */
static __always_inline long timer_start(__u32 user, __u32 type)
{
	if (type == T_LOGIN_FORGET) {
		struct login_ctx *c = bpf_map_lookup_elem(&login_timers, &user);

		if (!c) {
			struct login_ctx fresh = { .user = user, .type = type };

			bpf_map_update_elem(&login_timers, &user, &fresh, BPF_NOEXIST);
			c = bpf_map_lookup_elem(&login_timers, &user);
			if (!c)
				return -ENOENT;
			bpf_timer_init(&c->timer, &login_timers, CLOCK_MONOTONIC);
			bpf_timer_set_callback(&c->timer, login_forget);
		}
		c->attempts++;
		return bpf_timer_start(&c->timer, LOGIN_FORGET_NS, 0);
	} else {
		struct session_ctx *c = bpf_map_lookup_elem(&session_timers, &user);

		if (!c) {
			struct session_ctx fresh = {
				.user = user, .type = type, .idle_ms = SESSION_IDLE_MS
			};

			bpf_map_update_elem(&session_timers, &user, &fresh, BPF_NOEXIST);
			c = bpf_map_lookup_elem(&session_timers, &user);
			if (!c)
				return -ENOENT;
			bpf_timer_init(&c->timer, &session_timers, CLOCK_MONOTONIC);
			bpf_timer_set_callback(&c->timer, session_idle);
		}
		c->packets++;
		return bpf_timer_start(&c->timer, c->idle_ms * MS, 0);
	}
}

/* TIMER_STOP(type) for the current user: cancels the timer and forgets the
 * context. */
static __always_inline long timer_stop(__u32 user, __u32 type)
{
	long ret;

	if (type == T_LOGIN_FORGET) {
		struct login_ctx *c = bpf_map_lookup_elem(&login_timers, &user);

		if (!c)
			return -ENOENT;
		ret = bpf_timer_cancel(&c->timer);
		bpf_map_delete_elem(&login_timers, &user);
	} else {
		struct session_ctx *c = bpf_map_lookup_elem(&session_timers, &user);

		if (!c)
			return -ENOENT;
		ret = bpf_timer_cancel(&c->timer);
		bpf_map_delete_elem(&session_timers, &user);
	}
	return ret;
}

SEC("xdp")
int xdp_timer_users(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *udp;
	__u32 op, type;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_ABORTED;
	if (ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end)
		return XDP_ABORTED;
	op = bpf_ntohs(udp->dest) - USER_PORT_BASE;
	if (op >= 2 * NUM_TIMER_TYPES)
		return XDP_PASS;
	type = op / 2;
	if (op & 1)
		put_rc(op, timer_stop(ip->saddr, type));
	else
		put_rc(op, timer_start(ip->saddr, type));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
