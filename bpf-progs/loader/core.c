// A CO-RE access to a struct no kernel has: libbpf (and the loader) poison it.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct hdr {
	__u32 first;
	__u32 second;
} __attribute__((preserve_access_index));

SEC("xdp")
int core_prog(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr *h = data;
	if ((void *)(h + 1) > data_end)
		return XDP_PASS;
	return h->second == 1 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
