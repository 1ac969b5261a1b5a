// BTF-defined maps of several types, used by one XDP program.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct flow_key {
	__u32 saddr;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

struct flow_val {
	__u64 packets;
	__u64 bytes;
};

typedef __u64 counter_t;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, counter_t);
	__uint(max_entries, 16);
} arr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct flow_key);
	__type(value, struct flow_val);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(key_size, 4);
	__uint(value_size, 32);
	__uint(max_entries, 4);
} pcpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u64);
	__type(value, __u32);
	__uint(max_entries, 128);
} lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 8);
} devs SEC(".maps");

struct inner_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 2);
} inner1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner_map);
} outer SEC(".maps") = {
	.values = { &inner1 },
};

SEC("xdp")
int tail(struct xdp_md *ctx)
{
	return XDP_DROP;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, int(struct xdp_md *));
} jumps SEC(".maps") = {
	.values = { [1] = &tail },
};

SEC("xdp")
int use_maps(struct xdp_md *ctx)
{
	__u32 k = 3;
	counter_t *c = bpf_map_lookup_elem(&arr, &k);
	if (c)
		__sync_fetch_and_add(c, 1);

	struct flow_key fk = { .saddr = ctx->ingress_ifindex, .port = 80, .proto = 6 };
	struct flow_val fv = { .packets = 1, .bytes = ctx->data_end - ctx->data };
	bpf_map_update_elem(&flows, &fk, &fv, BPF_ANY);

	__u32 z = 0;
	__u64 *p = bpf_map_lookup_elem(&pcpu, &z);
	if (p)
		*p += 1;

	__u64 lk = ctx->rx_queue_index;
	__u32 one = 1;
	bpf_map_update_elem(&lru, &lk, &one, BPF_ANY);

	void *in = bpf_map_lookup_elem(&outer, &z);
	if (in) {
		__u32 *v = bpf_map_lookup_elem(in, &z);
		if (v)
			*v += 1;
	}

	bpf_tail_call(ctx, &jumps, 1);
	return bpf_redirect_map(&devs, 0, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
