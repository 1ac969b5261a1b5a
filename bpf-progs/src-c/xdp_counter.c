// SPDX-License-Identifier: GPL-2.0
/* xdp_counter: the workload profiled in seeds/002 (bpftime's xdp_pass.o).
 *
 * Counts frames by length in a hash map, then bounces Ethernet frames back
 * out of the interface they arrived on (XDP_TX) with the MACs swapped.
 *
 * Note the seed's counting logic: the first frame of a given length stores
 * 0, the second stores 1, and so on (value = old + 1, default 0).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32);
} counter_map SEC(".maps");

/* As in the kernel's samples/bpf/xdp2_kern.c: 16-bit moves. */
static __always_inline void swap_src_dst_mac(void *data)
{
	unsigned short *p = data;
	unsigned short dst[3];

	dst[0] = p[0];
	dst[1] = p[1];
	dst[2] = p[2];
	p[0] = p[3];
	p[1] = p[4];
	p[2] = p[5];
	p[3] = dst[0];
	p[4] = dst[1];
	p[5] = dst[2];
}

SEC("xdp")
int xdp_counter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 key = data_end - data;
	__u32 value = 0;
	__u32 *p;

	p = bpf_map_lookup_elem(&counter_map, &key);
	if (p)
		value = *p + 1;
	bpf_map_update_elem(&counter_map, &key, &value, BPF_ANY);

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;

	swap_src_dst_mac(data);
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
