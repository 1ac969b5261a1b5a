// Legacy `maps` section with the 20-byte struct bpf_map_def.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_map_def_legacy {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def_legacy SEC("maps") counters = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 4,
};

struct bpf_map_def_legacy SEC("maps") sessions = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = 8,
	.value_size = 16,
	.max_entries = 64,
	.map_flags = BPF_F_NO_PREALLOC,
};

SEC("xdp")
int legacy_prog(struct xdp_md *ctx)
{
	__u32 k = 1;
	__u64 *v = bpf_map_lookup_elem(&counters, &k);
	if (v)
		*v += 1;
	__u64 sk = ctx->ingress_ifindex;
	__u64 sv[2] = { 1, 2 };
	bpf_map_update_elem(&sessions, &sk, sv, BPF_ANY);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
