// SPDX-License-Identifier: GPL-2.0
/* xdp_timer_watchdog: a connection watchdog in the style of httperf's
 * (seed 001): one bpf_timer per flow, re-armed on every packet of the flow,
 * cancelled when the flow closes; a flow that stays silent for
 * WATCHDOG_NS times out.
 *
 * - flows (LRU_HASH keyed by the 5-tuple): the flow's timer, its packet
 *   count and the number of times its watchdog was armed;
 * - wd_stats (ARRAY of u64): 0 timeouts (callbacks), 1 flows closed by
 *   FIN or RST, 2 arms (bpf_timer_start calls that returned 0), 3 helper
 *   calls that failed, 4 flows opened.
 *
 * Every IPv4 TCP or UDP frame: FIN or RST (TCP) cancels the flow's timer
 * and deletes the flow; any other frame looks the flow up (inserting it and
 * initialising its timer on first sight) and (re)starts its timer. The
 * callback counts a timeout and deletes the flow it belongs to. Other
 * frames are passed untouched. Verdict XDP_PASS (XDP_ABORTED for truncated
 * headers).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define CLOCK_MONOTONIC 1
/* 2 s: short enough for a test to wait for, long enough that every frame of
 * a test's sequence (one test run each, on a loaded machine) finds the
 * watchdog still pending. */
#define WATCHDOG_NS (2000ULL * 1000 * 1000)

enum { WD_TIMEOUTS = 0, WD_CLOSED = 1, WD_ARMS = 2, WD_ERRORS = 3, WD_OPENED = 4, WD_NSTATS };

struct flow_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct flow {
	struct bpf_timer timer;
	__u64 packets;
	__u64 arms;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct flow_key);
	__type(value, struct flow);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WD_NSTATS);
	__type(key, __u32);
	__type(value, __u64);
} wd_stats SEC(".maps");

static __always_inline void stat_add(__u32 slot)
{
	__u64 *p = bpf_map_lookup_elem(&wd_stats, &slot);

	if (p)
		__sync_fetch_and_add(p, 1);
}

static __always_inline void check(long ret)
{
	if (ret)
		stat_add(WD_ERRORS);
}

/* The watchdog fired: the flow was silent for WATCHDOG_NS. */
static int watchdog_expired(void *map, struct flow_key *key, struct flow *f)
{
	stat_add(WD_TIMEOUTS);
	bpf_map_delete_elem(map, key);
	return 0;
}

SEC("xdp")
int xdp_timer_watchdog(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct flow_key key = {};
	struct iphdr *ip;
	struct flow *f;
	int closing = 0;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_ABORTED;
	if (ip->ihl != 5)
		return XDP_PASS;
	key.saddr = ip->saddr;
	key.daddr = ip->daddr;
	key.proto = ip->protocol;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);

		if ((void *)(tcp + 1) > data_end)
			return XDP_ABORTED;
		key.sport = tcp->source;
		key.dport = tcp->dest;
		closing = tcp->fin || tcp->rst;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);

		if ((void *)(udp + 1) > data_end)
			return XDP_ABORTED;
		key.sport = udp->source;
		key.dport = udp->dest;
	} else {
		return XDP_PASS;
	}

	f = bpf_map_lookup_elem(&flows, &key);
	if (closing) {
		if (f) {
			/* 1: the watchdog was pending, as it is until it fires. */
			if (bpf_timer_cancel(&f->timer) != 1)
				stat_add(WD_ERRORS);
			bpf_map_delete_elem(&flows, &key);
			stat_add(WD_CLOSED);
		}
		return XDP_PASS;
	}
	if (!f) {
		struct flow fresh = {};

		check(bpf_map_update_elem(&flows, &key, &fresh, BPF_NOEXIST));
		f = bpf_map_lookup_elem(&flows, &key);
		if (!f)
			return XDP_PASS;
		check(bpf_timer_init(&f->timer, &flows, CLOCK_MONOTONIC));
		check(bpf_timer_set_callback(&f->timer, watchdog_expired));
		stat_add(WD_OPENED);
	}
	f->packets++;
	if (bpf_timer_start(&f->timer, WATCHDOG_NS, 0) == 0) {
		f->arms++;
		stat_add(WD_ARMS);
	} else {
		stat_add(WD_ERRORS);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
