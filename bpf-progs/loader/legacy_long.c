// Legacy `maps` section with iproute2's longer struct bpf_elf_map (36 bytes),
// which carries a pinning field. No license section.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_elf_map {
	__u32 type;
	__u32 size_key;
	__u32 size_value;
	__u32 max_elem;
	__u32 flags;
	__u32 id;
	__u32 pinning;
	__u32 inner_id;
	__u32 inner_idx;
};

struct bpf_elf_map SEC("maps") stats = {
	.type = BPF_MAP_TYPE_PERCPU_ARRAY,
	.size_key = 4,
	.size_value = 8,
	.max_elem = 2,
	.pinning = 2,
};

struct bpf_elf_map SEC("maps") acl = {
	.type = BPF_MAP_TYPE_HASH,
	.size_key = 4,
	.size_value = 1,
	.max_elem = 256,
};

SEC("xdp/acl")
int acl_prog(struct xdp_md *ctx)
{
	__u32 k = ctx->ingress_ifindex;
	__u8 *deny = bpf_map_lookup_elem(&acl, &k);
	__u32 z = 0;
	__u64 *s = bpf_map_lookup_elem(&stats, &z);
	if (s)
		*s += 1;
	return deny && *deny ? XDP_DROP : XDP_PASS;
}
