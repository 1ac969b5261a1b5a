// SPDX-License-Identifier: GPL-2.0
/* xdp_katran_sizes: maps at katran's default balancer sizes (balancer_consts.h:
 * MAX_VIPS 512, RING_SIZE 65537, MAX_REALS 4096, MAX_QUIC_REALS 0xfffffe), 400 MB
 * and more of map memory in all, for `xdp-runner run`'s store sizing. Not a
 * differential case: the program only touches the last slot of ch_rings (33554944
 * entries, 268 MB in the store) and of quic_mapping. Each run adds 1 to both; the
 * return value is XDP_PASS while ch_rings' last slot was 0 before the run, then
 * XDP_TX.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_VIPS 512
#define RING_SIZE 65537
#define CH_RINGS_SIZE (MAX_VIPS * RING_SIZE)
#define MAX_REALS 4096
#define MAX_QUIC_REALS 0x00fffffe
#define DEFAULT_LRU_SIZE 1000

struct vip_definition {
	union {
		__be32 vip;
		__be32 vipv6[4];
	};
	__u16 port;
	__u8 proto;
};

struct vip_meta {
	__u32 flags;
	__u32 vip_num;
};

struct real_definition {
	union {
		__be32 dst;
		__be32 dstv6[4];
	};
	__u8 flags;
};

struct flow_key {
	union {
		__be32 src;
		__be32 srcv6[4];
	};
	union {
		__be32 dst;
		__be32 dstv6[4];
	};
	union {
		__u32 ports;
		__u16 port16[2];
	};
	__u8 proto;
};

struct real_pos_lru {
	__u32 pos;
	__u64 atime;
};

struct lb_stats {
	__u64 v1;
	__u64 v2;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct vip_definition);
	__type(value, struct vip_meta);
	__uint(max_entries, MAX_VIPS);
} vip_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct flow_key);
	__type(value, struct real_pos_lru);
	__uint(max_entries, DEFAULT_LRU_SIZE);
} fallback_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, CH_RINGS_SIZE);
} ch_rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct real_definition);
	__uint(max_entries, MAX_REALS);
} reals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_stats);
	__uint(max_entries, MAX_REALS);
} reals_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_stats);
	__uint(max_entries, MAX_VIPS * 2);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, MAX_QUIC_REALS);
} quic_mapping SEC(".maps");

SEC("xdp")
int xdp_katran_sizes(struct xdp_md *ctx)
{
	__u32 last = CH_RINGS_SIZE - 1, quic_last = MAX_QUIC_REALS - 1, zero = 0;
	__u32 *ring = bpf_map_lookup_elem(&ch_rings, &last);
	__u32 *quic = bpf_map_lookup_elem(&quic_mapping, &quic_last);
	struct lb_stats *st = bpf_map_lookup_elem(&stats, &zero);
	int seen;

	if (!ring || !quic || !st)
		return XDP_ABORTED;
	seen = *ring != 0;
	*ring += 1;
	*quic += 1;
	st->v1 += 1;
	return seen ? XDP_TX : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
