// SPDX-License-Identifier: GPL-2.0
/* xdp_sock: socket lookups and bpf_check_mtu, run in the kernel in the
 * FIB_NETNS_SETUP namespace (lo, and veths v0/v1 with ifindex 10/11), where no
 * socket exists: every lookup finds none. `results` (u64 slots): 0-2 whether
 * sk_lookup_tcp / sk_lookup_udp / skc_lookup_tcp found a socket for a tuple
 * made of the frame's IPv4 addresses and ports; 3 a lookup with a tuple size of
 * neither form; then pairs (return value, *mtu_len) of bpf_check_mtu: the
 * ingress device (lo), an L3 length over lo's MTU, v0 (ifindex 10), v0 with
 * len_diff 1500, v0 with a flag, ifindex 999, and v0 with an L3 length of
 * 1600 and len_diff -200. XDP_PASS.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 20);
	__type(key, __u32);
	__type(value, __u64);
} results SEC(".maps");

static __always_inline void put(__u32 k, __u64 v)
{
	__u64 *slot = bpf_map_lookup_elem(&results, &k);

	if (slot)
		*slot = v;
}

static __always_inline void mtu(struct xdp_md *ctx, __u32 k, __u32 ifindex,
				__u32 len, __s32 diff, __u64 flags)
{
	__u32 m = len;
	long ret = bpf_check_mtu(ctx, ifindex, &m, diff, flags);

	put(k, (__u64)ret);
	put(k + 1, m);
}

SEC("xdp")
int xdp_sock(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u8 *p = data;

	if (data + 38 > data_end)
		return XDP_DROP;
	__builtin_memcpy(&t.ipv4.saddr, p + 26, 4);
	__builtin_memcpy(&t.ipv4.daddr, p + 30, 4);
	__builtin_memcpy(&t.ipv4.sport, p + 34, 2);
	__builtin_memcpy(&t.ipv4.dport, p + 36, 2);

	sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	put(0, sk != 0);
	if (sk)
		bpf_sk_release(sk);
	sk = bpf_sk_lookup_udp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	put(1, sk != 0);
	if (sk)
		bpf_sk_release(sk);
	sk = (struct bpf_sock *)bpf_skc_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	put(2, sk != 0);
	if (sk)
		bpf_sk_release(sk);
	sk = bpf_sk_lookup_tcp(ctx, &t, 5, BPF_F_CURRENT_NETNS, 0);
	put(3, sk != 0);
	if (sk)
		bpf_sk_release(sk);

	mtu(ctx, 4, 0, 0, 0, 0);
	mtu(ctx, 6, 0, 65537, 0, 0);
	mtu(ctx, 8, 10, 0, 0, 0);
	mtu(ctx, 10, 10, 0, 1500, 0);
	mtu(ctx, 12, 10, 0, 0, 1);
	mtu(ctx, 14, 999, 7, 0, 0);
	mtu(ctx, 16, 10, 1600, -200, 0);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
