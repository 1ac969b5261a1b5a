// SPDX-License-Identifier: GPL-2.0
/* xdp_vlan: 802.1Q tag push and pop, in the style of the kernel's
 * samples/bpf xdp_vlan / selftests test_xdp_vlan.c.
 *
 * vlan_cfg[0] = { mode, vid } selects the action:
 * - VLAN_PUSH (1): bpf_xdp_adjust_head(-4), the MACs move to the new front,
 *   then EtherType 0x8100 and TCI = vid (PCP 0, DEI 0), then the original
 *   EtherType; XDP_TX.
 * - VLAN_POP (2): when the outer EtherType is 0x8100 or 0x88a8, the tag is
 *   removed: the MACs move 4 bytes forward, the EtherType becomes the
 *   tag's encapsulated protocol, bpf_xdp_adjust_head(+4); XDP_TX. Untagged
 *   frames: XDP_PASS, untouched.
 * - anything else (the default 0): XDP_PASS, untouched.
 * vlan_stats: [0] pushed, [1] popped, [2] passed.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

enum { VLAN_NONE = 0, VLAN_PUSH = 1, VLAN_POP = 2 };

struct vlan_conf {
	__u32 mode;
	__u16 vid;
	__u16 pad;
};

struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vlan_conf);
} vlan_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} vlan_stats SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&vlan_stats, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("xdp")
int xdp_vlan(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct vlan_conf *cfg;
	struct ethhdr copy;
	struct vlan_hdr *vlh;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&vlan_cfg, &zero);
	if (!cfg || (void *)(eth + 1) > data_end)
		goto pass;

	if (cfg->mode == VLAN_PUSH) {
		__u16 vid = cfg->vid & 0x0fff;

		__builtin_memcpy(&copy, eth, sizeof(copy));
		if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct vlan_hdr)))
			return XDP_ABORTED;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		eth = data;
		vlh = (void *)(eth + 1);
		if ((void *)(vlh + 1) > data_end)
			return XDP_ABORTED;
		__builtin_memcpy(eth->h_dest, copy.h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_source, copy.h_source, ETH_ALEN);
		eth->h_proto = bpf_htons(ETH_P_8021Q);
		vlh->h_vlan_TCI = bpf_htons(vid);
		vlh->h_vlan_encapsulated_proto = copy.h_proto;
		count(0);
		return XDP_TX;
	}
	if (cfg->mode == VLAN_POP) {
		__be16 inner;

		if (eth->h_proto != bpf_htons(ETH_P_8021Q) &&
		    eth->h_proto != bpf_htons(ETH_P_8021AD))
			goto pass;
		vlh = (void *)(eth + 1);
		if ((void *)(vlh + 1) > data_end)
			goto pass;
		inner = vlh->h_vlan_encapsulated_proto;
		__builtin_memcpy(&copy, eth, sizeof(copy));
		if (bpf_xdp_adjust_head(ctx, (int)sizeof(struct vlan_hdr)))
			return XDP_ABORTED;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		eth = data;
		if ((void *)(eth + 1) > data_end)
			return XDP_ABORTED;
		__builtin_memcpy(eth->h_dest, copy.h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_source, copy.h_source, ETH_ALEN);
		eth->h_proto = inner;
		count(1);
		return XDP_TX;
	}
pass:
	count(2);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
