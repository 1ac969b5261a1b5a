// SPDX-License-Identifier: GPL-2.0
/* xdp_spinlock: per-class accounting under a bpf_spin_lock, in the style of
 * the kernel selftests' test_spin_lock.c and test_map_lock.c.
 *
 * The value (struct flow_acct) holds a struct bpf_spin_lock and several
 * fields that must change together: packets, bytes, last, min and max
 * frame length. Every frame updates, under the lock,
 * - acct_array[class] (ARRAY): class 0 IPv4, 1 IPv6, 2 other;
 * - acct_hash[EtherType, host order] (HASH), inserted zeroed with
 *   BPF_NOEXIST on first sight.
 * A fresh entry has min_len 0, which means "unset": the first frame sets
 * it. Verdict XDP_PASS (XDP_ABORTED for frames shorter than Ethernet).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct flow_acct {
	struct bpf_spin_lock lock;
	__u32 last_len;
	__u64 packets;
	__u64 bytes;
	__u32 min_len;
	__u32 max_len;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, struct flow_acct);
} acct_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct flow_acct);
} acct_hash SEC(".maps");

static __always_inline void account(struct flow_acct *a, __u32 len)
{
	bpf_spin_lock(&a->lock);
	a->packets++;
	a->bytes += len;
	a->last_len = len;
	if (a->min_len == 0 || len < a->min_len)
		a->min_len = len;
	if (len > a->max_len)
		a->max_len = len;
	bpf_spin_unlock(&a->lock);
}

SEC("xdp")
int xdp_spinlock(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = data_end - data;
	struct ethhdr *eth = data;
	struct flow_acct *a;
	__u32 class, proto;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	proto = bpf_ntohs(eth->h_proto);
	class = proto == ETH_P_IP ? 0 : proto == ETH_P_IPV6 ? 1 : 2;

	a = bpf_map_lookup_elem(&acct_array, &class);
	if (a)
		account(a, len);

	a = bpf_map_lookup_elem(&acct_hash, &proto);
	if (!a) {
		struct flow_acct zero = {};

		bpf_map_update_elem(&acct_hash, &proto, &zero, BPF_NOEXIST);
		a = bpf_map_lookup_elem(&acct_hash, &proto);
	}
	if (a)
		account(a, len);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
