// SPDX-License-Identifier: GPL-2.0
/* xdp_tail_meta: the frame-geometry helpers.
 *
 * Every run records helper results in the `results` array (one __u64 per
 * slot, see enum res), then:
 *  1. bpf_xdp_get_buff_len(), bpf_xdp_load_bytes() of the Ethernet header and
 *     an out-of-range bpf_xdp_load_bytes() (its error code is recorded);
 *  2. an IPv4 header without options is copied to the stack, its checksum
 *     verified with
 *     bpf_csum_diff() (folded result 0 for a valid header), its TTL
 *     decremented, the checksum recomputed and the header written back with
 *     bpf_xdp_store_bytes();
 *  3. bpf_xdp_adjust_tail(): an impossible grow (+4096, error recorded),
 *     then, by protocol: UDP grows by 16 bytes and writes a trailer with
 *     bpf_xdp_store_bytes(); TCP shrinks by 4; ICMP grows by 8 (zeroed by
 *     the kernel); IPv6 shrinks by 8; other frames are left alone;
 *  4. bpf_xdp_adjust_meta(): 8 bytes of metadata for UDP, 4 otherwise,
 *     holding META_MAGIC (and the original length for 8 bytes).
 * Returns XDP_PASS, XDP_DROP for frames shorter than Ethernet, XDP_ABORTED
 * when a helper fails unexpectedly.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define META_MAGIC 0x5eed1e55

enum res {
	R_RUNS = 0,		/* incremented every run */
	R_LEN_BEFORE,		/* bpf_xdp_get_buff_len() at entry */
	R_LOAD_RET,		/* bpf_xdp_load_bytes(eth) */
	R_LOAD_OOB_RET,		/* bpf_xdp_load_bytes(len - 2, 4 bytes) */
	R_CSUM_VERIFY,		/* folded csum of the received IPv4 header */
	R_CSUM_RAW,		/* raw bpf_csum_diff() over the new header */
	R_STORE_RET,		/* bpf_xdp_store_bytes(ip header) */
	R_TAIL_BIG_RET,		/* bpf_xdp_adjust_tail(+4096) */
	R_TAIL_DELTA,		/* the delta applied */
	R_TAIL_RET,		/* bpf_xdp_adjust_tail(delta) */
	R_TRAILER_RET,		/* bpf_xdp_store_bytes(trailer) */
	R_META_RET,		/* bpf_xdp_adjust_meta() */
	R_LEN_AFTER,		/* bpf_xdp_get_buff_len() at exit */
	R_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, R_MAX);
	__type(key, __u32);
	__type(value, __u64);
} results SEC(".maps");

static __always_inline void record(__u32 slot, __u64 v)
{
	__u64 *p = bpf_map_lookup_elem(&results, &slot);

	if (p)
		*p = v;
}

static __always_inline __u16 csum_fold(__u64 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return ~csum & 0xffff;
}

SEC("xdp")
int xdp_tail_meta(struct xdp_md *ctx)
{
	struct ethhdr eth;
	struct iphdr iph;
	__u32 len, runs_key = R_RUNS;
	__u64 *runs;
	__u8 l4 = 0;
	__u16 dport = 0;
	int delta = 0, meta_len, ret;
	__s64 csum;
	void *data, *data_meta;

	runs = bpf_map_lookup_elem(&results, &runs_key);
	if (runs)
		__sync_fetch_and_add(runs, 1);

	len = bpf_xdp_get_buff_len(ctx);
	record(R_LEN_BEFORE, len);

	ret = bpf_xdp_load_bytes(ctx, 0, &eth, sizeof(eth));
	record(R_LOAD_RET, ret);
	if (ret)
		return XDP_DROP;
	/* Straddles the end of the frame: must fail. */
	ret = bpf_xdp_load_bytes(ctx, len - 2, &iph, 4);
	record(R_LOAD_OOB_RET, ret);

	if (eth.h_proto == bpf_htons(ETH_P_IP)) {
		if (bpf_xdp_load_bytes(ctx, sizeof(eth), &iph, sizeof(iph)))
			return XDP_ABORTED;
		l4 = iph.protocol;
		if (iph.ihl == 5 && (l4 == IPPROTO_UDP || l4 == IPPROTO_TCP)) {
			__be16 ports[2];

			if (!bpf_xdp_load_bytes(ctx, sizeof(eth) + sizeof(iph),
						ports, sizeof(ports)))
				dport = bpf_ntohs(ports[1]);
		}
		/* Headers with options are left alone: the copy holds 20 bytes. */
		if (iph.ihl == 5) {
			csum = bpf_csum_diff(0, 0, (__be32 *)&iph, sizeof(iph), 0);
			record(R_CSUM_VERIFY, csum_fold(csum));

			iph.ttl--;
			iph.check = 0;
			csum = bpf_csum_diff(0, 0, (__be32 *)&iph, sizeof(iph), 0);
			record(R_CSUM_RAW, csum);
			iph.check = csum_fold(csum);
			ret = bpf_xdp_store_bytes(ctx, sizeof(eth), &iph, sizeof(iph));
			record(R_STORE_RET, ret);
			if (ret)
				return XDP_ABORTED;
		}

		if (l4 == IPPROTO_UDP)
			delta = 16;
		else if (l4 == IPPROTO_TCP)
			delta = -4;
		else if (l4 == IPPROTO_ICMP)
			delta = 8;
	} else if (eth.h_proto == bpf_htons(ETH_P_IPV6)) {
		delta = -8;
	}

	ret = bpf_xdp_adjust_tail(ctx, 4096);
	record(R_TAIL_BIG_RET, ret);

	record(R_TAIL_DELTA, delta);
	if (delta) {
		ret = bpf_xdp_adjust_tail(ctx, delta);
		record(R_TAIL_RET, ret);
		if (ret)
			return XDP_ABORTED;
	}
	if (delta == 16) {
		/* "TRAILER" + dport + zero padding */
		__u8 trailer[16] = { 'T', 'R', 'A', 'I', 'L', 'E', 'R', 0 };

		trailer[8] = dport >> 8;
		trailer[9] = dport & 0xff;
		ret = bpf_xdp_store_bytes(ctx, len, trailer, sizeof(trailer));
		record(R_TRAILER_RET, ret);
	}

	meta_len = l4 == IPPROTO_UDP ? 8 : 4;
	ret = bpf_xdp_adjust_meta(ctx, -meta_len);
	record(R_META_RET, ret);
	if (ret)
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	data_meta = (void *)(long)ctx->data_meta;
	if (meta_len == 8) {
		__u32 *m = data_meta;

		if ((void *)(m + 2) > data)
			return XDP_ABORTED;
		m[0] = META_MAGIC;
		m[1] = len;
	} else {
		__u32 *m = data_meta;

		if ((void *)(m + 1) > data)
			return XDP_ABORTED;
		m[0] = META_MAGIC;
	}

	record(R_LEN_AFTER, bpf_xdp_get_buff_len(ctx));
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
