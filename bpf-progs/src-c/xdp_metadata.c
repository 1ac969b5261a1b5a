// SPDX-License-Identifier: GPL-2.0
/* xdp_metadata: the XDP RX metadata kfuncs, as the kernel selftests'
 * xdp_metadata.c calls them. In a test run the program is not bound to a
 * device, so the kernel runs their generic versions (net/core/xdp.c), which
 * return -EOPNOTSUPP and leave the outputs alone.
 *
 * meta_out[i] (s64): 0 bpf_xdp_metadata_rx_timestamp's return, 1 the timestamp
 * (preset to 0x1111), 2 bpf_xdp_metadata_rx_hash's return, 3 the hash (0x2222),
 * 4 the hash type (0x3333), 5 bpf_xdp_metadata_rx_vlan_tag's return, 6 the
 * protocol (0x4444), 7 the TCI (0x5555). Returns XDP_PASS.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

enum xdp_rss_hash_type {
	XDP_RSS_TYPE_NONE = 0,
};

extern int bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx, __u64 *timestamp) __ksym;
extern int bpf_xdp_metadata_rx_hash(const struct xdp_md *ctx, __u32 *hash,
				    enum xdp_rss_hash_type *rss_type) __ksym;
extern int bpf_xdp_metadata_rx_vlan_tag(const struct xdp_md *ctx, __be16 *vlan_proto,
					__u16 *vlan_tci) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __s64);
} meta_out SEC(".maps");

static __always_inline void put(__u32 k, __s64 v)
{
	__s64 *p = bpf_map_lookup_elem(&meta_out, &k);

	if (p)
		*p = v;
}

SEC("xdp")
int xdp_metadata(struct xdp_md *ctx)
{
	__u64 ts = 0x1111;
	__u32 hash = 0x2222, type = 0x3333;
	__be16 proto = 0x4444;
	__u16 tci = 0x5555;

	put(0, bpf_xdp_metadata_rx_timestamp(ctx, &ts));
	put(1, ts);
	put(2, bpf_xdp_metadata_rx_hash(ctx, &hash, (enum xdp_rss_hash_type *)&type));
	put(3, hash);
	put(4, type);
	put(5, bpf_xdp_metadata_rx_vlan_tag(ctx, &proto, &tci));
	put(6, proto);
	put(7, tci);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
