// SPDX-License-Identifier: GPL-2.0
/* xdp_redirector: the redirect family, in the style of the kernel samples
 * xdp_redirect_map / xdp_redirect_cpu and xdp-tools' xdp-forward.
 *
 * Each program picks a target from the frame and returns the helper's
 * result; redir_rets[n] records that result for program n. Frames are not
 * modified.
 * - xdp_redir_devmap (0): bpf_redirect_map(&tx_ports, key, XDP_PASS),
 *   DEVMAP, key = last byte of the destination MAC & 7;
 * - xdp_redir_devhash (1): bpf_redirect_map(&tx_ports_hash, key, XDP_DROP),
 *   DEVMAP_HASH, key = 1000 + last byte of the destination MAC;
 * - xdp_redir_cpumap (2): bpf_redirect_map(&cpu_map, key, XDP_PASS),
 *   CPUMAP, key 1 for IPv6 frames, 0 otherwise;
 * - xdp_redir_ifindex (3): bpf_redirect(redir_cfg.ifindex, redir_cfg.flags)
 *   (both 0 unless set; non-zero flags make it XDP_ABORTED).
 * An empty map slot returns the fallback in the flags' low bits; a filled
 * one XDP_REDIRECT.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct redir_conf {
	__u32 ifindex;
	__u32 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} tx_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} tx_ports_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32); /* qsize only: struct bpf_cpumap_val without a program */
} cpu_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct redir_conf);
} redir_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} redir_rets SEC(".maps");

static __always_inline int note(__u32 prog, long ret)
{
	__u32 *v = bpf_map_lookup_elem(&redir_rets, &prog);

	if (v)
		*v = ret;
	return ret;
}

SEC("xdp")
int xdp_redir_devmap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	return note(0, bpf_redirect_map(&tx_ports, eth->h_dest[5] & 7, XDP_PASS));
}

SEC("xdp")
int xdp_redir_devhash(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	return note(1, bpf_redirect_map(&tx_ports_hash, 1000 + eth->h_dest[5], XDP_DROP));
}

SEC("xdp")
int xdp_redir_cpumap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 cpu;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	cpu = eth->h_proto == bpf_htons(ETH_P_IPV6) ? 1 : 0;
	return note(2, bpf_redirect_map(&cpu_map, cpu, XDP_PASS));
}

SEC("xdp")
int xdp_redir_ifindex(struct xdp_md *ctx)
{
	struct redir_conf *cfg;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&redir_cfg, &zero);
	if (!cfg)
		return XDP_ABORTED;
	return note(3, bpf_redirect(cfg->ifindex, cfg->flags));
}

char _license[] SEC("license") = "GPL";
