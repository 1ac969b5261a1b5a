// Loader options fixture: a program in a section libbpf 1.x does not know
// (loaded with an explicit type), a map sized by user space (max_entries 0),
// .rodata configuration set before load, and a TC program with a bit the
// loader refuses (a .kconfig extern; its kfunc call is recorded by name) that
// must be ignorable when only the XDP program is loaded.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 0); /* sized by user space before load */
	__type(key, __u32);
	__type(value, __u64);
} sized_later SEC(".maps");

const volatile __u32 cfg_verdict = XDP_PASS;
const volatile __u8 cfg_mac[6] = { 0 };
const volatile __u64 cfg_limit = 100;

SEC("xdp_legacy")
int opt_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	__u32 key = 0;
	__u64 one = 1, *v;

	if ((void *)(p + 6) > data_end)
		return XDP_ABORTED;
	for (int i = 0; i < 6; i++)
		if (p[i] != cfg_mac[i])
			return XDP_DROP;
	v = bpf_map_lookup_elem(&sized_later, &key);
	if (v) {
		if (*v >= cfg_limit)
			return XDP_DROP;
		__sync_fetch_and_add(v, 1);
	} else {
		bpf_map_update_elem(&sized_later, &key, &one, BPF_ANY);
	}
	return cfg_verdict;
}

extern int CONFIG_HZ __kconfig;
extern void bpf_rcu_read_lock(void) __ksym;

SEC("tc")
int opt_tc(struct __sk_buff *skb)
{
	bpf_rcu_read_lock();
	return CONFIG_HZ > 100 ? 0 : 2;
}

char LICENSE[] SEC("license") = "GPL";
