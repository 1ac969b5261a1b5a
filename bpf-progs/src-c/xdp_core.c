// SPDX-License-Identifier: GPL-2.0
/* xdp_core: a program built against vmlinux.h with CO-RE relocations, in the
 * style of libbpf-bootstrap and the xdp-tools programs that include
 * vmlinux.h instead of the UAPI headers.
 *
 * Built with ../build/vmlinux.h (made by `make vmlinux` from
 * /sys/kernel/btf/vmlinux) when present, else with xdp_core_types.h, a
 * preserve_access_index subset: the relocations are the same.
 *
 * Both programs write one struct core_facts into core_out[0] and return
 * XDP_PASS (XDP_ABORTED for a frame without a full Ethernet + IPv4 header
 * when the EtherType is IPv4). The fields:
 * - xdp_core: every ctx, ethhdr and iphdr access is a direct load with a
 *   CO-RE field-offset relocation; plus bpf_core_field_exists (xdp_md
 *   egress_ifindex: 1 on this kernel), bpf_core_field_size (iphdr saddr: 4),
 *   bpf_core_field_offset (iphdr tot_len: 2, xdp_md rx_queue_index: 16),
 *   bpf_core_type_exists (struct iphdr: 1), bpf_core_type_size (ethhdr:
 *   14) and bpf_core_enum_value (XDP_TX: 3).
 * - xdp_core_read: the header fields through BPF_CORE_READ, i.e.
 *   bpf_probe_read_kernel of packet memory with relocated offsets.
 */
#if __has_include("../build/vmlinux.h")
#include "../build/vmlinux.h"
#else
#include "xdp_core_types.h"
#endif
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800

struct core_facts {
	__u64 runs;
	__u32 ifindex;
	__u32 rx_queue;
	__u32 len;
	__u32 h_proto;    /* host order */
	__u32 ip_ttl;
	__u32 ip_proto;
	__u32 ip_saddr;   /* as in the packet (network order bytes) */
	__u32 ip_tot_len; /* host order */
	__u32 egress_exists;
	__u32 saddr_size;
	__u32 tot_len_off;
	__u32 rxq_off;
	__u32 iphdr_exists;
	__u32 ethhdr_size;
	__u32 xdp_tx_value;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct core_facts);
} core_out SEC(".maps");

SEC("xdp")
int xdp_core(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct core_facts *f;
	__u32 zero = 0;

	f = bpf_map_lookup_elem(&core_out, &zero);
	if (!f)
		return XDP_ABORTED;
	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	f->runs++;
	f->ifindex = ctx->ingress_ifindex;
	f->rx_queue = ctx->rx_queue_index;
	f->len = data_end - data;
	f->h_proto = bpf_ntohs(eth->h_proto);
	f->egress_exists = bpf_core_field_exists(ctx->egress_ifindex);
	f->saddr_size = bpf_core_field_size(iph->saddr);
	f->tot_len_off = bpf_core_field_offset(struct iphdr, tot_len);
	f->rxq_off = bpf_core_field_offset(struct xdp_md, rx_queue_index);
	f->iphdr_exists = bpf_core_type_exists(struct iphdr);
	f->ethhdr_size = bpf_core_type_size(struct ethhdr);
	f->xdp_tx_value = bpf_core_enum_value(enum xdp_action, XDP_TX);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if ((void *)(iph + 1) > data_end)
		return XDP_ABORTED;
	f->ip_ttl = iph->ttl;
	f->ip_proto = iph->protocol;
	f->ip_saddr = iph->saddr;
	f->ip_tot_len = bpf_ntohs(iph->tot_len);
	return XDP_PASS;
}

SEC("xdp")
int xdp_core_read(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct core_facts *f;
	__u32 one = 1;

	f = bpf_map_lookup_elem(&core_out, &one);
	if (!f)
		return XDP_ABORTED;
	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	f->runs++;
	f->len = data_end - data;
	f->h_proto = bpf_ntohs(BPF_CORE_READ(eth, h_proto));
	if (f->h_proto != ETH_P_IP)
		return XDP_PASS;
	if ((void *)(iph + 1) > data_end)
		return XDP_ABORTED;
	f->ip_ttl = BPF_CORE_READ(iph, ttl);
	f->ip_proto = BPF_CORE_READ(iph, protocol);
	f->ip_saddr = BPF_CORE_READ(iph, saddr);
	f->ip_tot_len = bpf_ntohs(BPF_CORE_READ(iph, tot_len));
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
