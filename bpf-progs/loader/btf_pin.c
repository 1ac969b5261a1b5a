// A BTF map pinned by name. Kept apart from maps.c because libbpf pins it
// under /sys/fs/bpf when the object is loaded into the kernel.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_counts SEC(".maps");

SEC("xdp")
int pin_prog(struct xdp_md *ctx)
{
	__u32 k = ctx->rx_queue_index;
	__u64 one = 1;
	bpf_map_update_elem(&pinned_counts, &k, &one, BPF_NOEXIST);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
