// Subprograms: a global function and static functions in .text called from
// several programs, a static call chain inside .text (no relocation), a
// bpf_loop callback (BPF_PSEUDO_FUNC), several programs in one section, an
// xdp.frags program and a tc program beside the XDP ones.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

__u64 hits;

static __noinline int leaf(int x)
{
	return x * 3 + 1;
}

static __noinline int middle(int x)
{
	return leaf(x) + leaf(x + 1);
}

__noinline int global_len(struct xdp_md *ctx)
{
	if (!ctx)
		return 0;
	return ctx->data_end - ctx->data;
}

struct loop_ctx {
	__u64 sum;
};

static int loop_cb(__u32 idx, void *data)
{
	struct loop_ctx *lc = data;
	lc->sum += idx;
	return 0;
}

SEC("xdp")
int prog_a(struct xdp_md *ctx)
{
	struct loop_ctx lc = { 0 };
	int n = global_len(ctx);
	bpf_loop(4, loop_cb, &lc, 0);
	hits += lc.sum;
	return middle(n) > 0 ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int prog_b(struct xdp_md *ctx)
{
	return leaf(ctx->rx_queue_index) == 7 ? XDP_DROP : XDP_PASS;
}

SEC("xdp.frags")
int prog_frags(struct xdp_md *ctx)
{
	return global_len(ctx) > 100 ? XDP_TX : XDP_PASS;
}

SEC("tc")
int prog_tc(struct __sk_buff *skb)
{
	return middle(skb->len) ? TC_ACT_OK : TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL";
