// SPDX-License-Identifier: GPL-2.0
/* xdp_syncookie: answers TCP SYNs with SYN-ACK cookies, in the style of the
 * kernel selftests' xdp_synproxy_kern.c (much simplified).
 *
 * Ethernet (untagged) + IPv4 with IHL 5, not fragmented, + TCP whose flags
 * are SYN alone (of SYN/ACK/RST/FIN), whose header lies in the frame and
 * whose IP total length fits in the frame. Anything else: XDP_PASS.
 *
 * The reply reuses the frame: bpf_xdp_adjust_tail shrinks it to 54 bytes
 * (Ethernet + 20 + 20: TCP options and any padding dropped), then
 * - MACs, IP addresses and ports are swapped;
 * - IPv4: tot_len 40, id 0, DF, TTL 64, header checksum recomputed;
 * - TCP: seq = cookie, ack = client seq + 1, doff 5, flags SYN|ACK,
 *   window 8192, urg 0, checksum recomputed over the pseudo-header;
 * - XDP_TX.
 * cookie = (keyed_hash(saddr, daddr, sport, dport, seq) & ~3) | mss_idx,
 * where mss_idx indexes {536, 1300, 1440, 1460} (the largest <= the MSS
 * option when it is the first option, 536 without it) and the key is
 * cookie_key[0] (four u32, zero unless set). Real SYN cookies also mix in
 * a time counter; this one is deterministic on purpose.
 *   keyed_hash: h = k0; h = mix(h, saddr ^ k1); h = mix(h, daddr ^ k2);
 *   h = mix(h, (sport << 16 | dport) ^ k3); h = mix(h, seq); fmix(h)
 *   (values in host order; mix/fmix as in xdp_lb.c).
 * syncookie_stats: [0] SYN-ACKs sent, [1] passed frames.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct cookie_secret {
	__u32 k[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cookie_secret);
} cookie_key SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} syncookie_stats SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&syncookie_stats, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline __u32 rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static __always_inline __u32 mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51u;
	k = rotl32(k, 15);
	k *= 0x1b873593u;
	h ^= k;
	h = rotl32(h, 13);
	return h * 5 + 0xe6546b64u;
}

static __always_inline __u32 fmix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static __always_inline __u32 fold_sum(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

SEC("xdp")
int xdp_syncookie(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct tcphdr *th = (void *)(iph + 1);
	static const __u16 msstab[4] = { 536, 1300, 1440, 1460 };
	struct cookie_secret *sec;
	__u32 k[4] = {}, zero = 0, h, cookie, seq, mss_idx = 0, sum, i;
	__be32 saddr, daddr;
	__be16 sport, dport;
	__u8 tmp_mac[ETH_ALEN], *opt;
	int len = data_end - data;
	__u16 *w;

	if ((void *)(th + 1) > data_end)
		goto pass;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl != 5 ||
	    iph->protocol != IPPROTO_TCP || (iph->frag_off & bpf_htons(0x3fff)))
		goto pass;
	if ((((__u8 *)th)[13] & 0x17) != 0x02) /* SYN without ACK/RST/FIN */
		goto pass;
	if (th->doff < 5 || (void *)th + th->doff * 4 > data_end ||
	    sizeof(*eth) + bpf_ntohs(iph->tot_len) > len)
		goto pass;

	/* The MSS option, when it comes first. */
	opt = (void *)(th + 1);
	if (th->doff >= 6 && (void *)(opt + 4) <= data_end && opt[0] == 2 && opt[1] == 4) {
		__u16 mss = (opt[2] << 8) | opt[3];

#pragma unroll
		for (i = 0; i < 4; i++)
			if (msstab[i] <= mss)
				mss_idx = i;
	}

	sec = bpf_map_lookup_elem(&cookie_key, &zero);
	if (sec)
		__builtin_memcpy(k, sec->k, sizeof(k));
	saddr = iph->saddr;
	daddr = iph->daddr;
	sport = th->source;
	dport = th->dest;
	seq = bpf_ntohl(th->seq);
	h = k[0];
	h = mix(h, bpf_ntohl(saddr) ^ k[1]);
	h = mix(h, bpf_ntohl(daddr) ^ k[2]);
	h = mix(h, (((__u32)bpf_ntohs(sport) << 16) | bpf_ntohs(dport)) ^ k[3]);
	h = mix(h, seq);
	cookie = (fmix(h) & ~3u) | mss_idx;

	if (len > 54 && bpf_xdp_adjust_tail(ctx, 54 - len))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	iph = (void *)(eth + 1);
	th = (void *)(iph + 1);
	if ((void *)(th + 1) > data_end)
		return XDP_ABORTED;

	__builtin_memcpy(tmp_mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp_mac, ETH_ALEN);

	iph->tot_len = bpf_htons(40);
	iph->id = 0;
	iph->frag_off = bpf_htons(0x4000);
	iph->ttl = 64;
	iph->saddr = daddr;
	iph->daddr = saddr;
	iph->check = 0;
	w = (__u16 *)iph;
	sum = 0;
#pragma unroll
	for (i = 0; i < 10; i++)
		sum += w[i];
	iph->check = ~fold_sum(sum);

	th->source = dport;
	th->dest = sport;
	th->ack_seq = bpf_htonl(seq + 1);
	th->seq = bpf_htonl(cookie);
	((__u8 *)th)[12] = 5 << 4;
	((__u8 *)th)[13] = 0x12; /* SYN | ACK */
	th->window = bpf_htons(8192);
	th->urg_ptr = 0;
	th->check = 0;
	/* Pseudo-header: addresses, zero + protocol, TCP length (20). */
	sum = (daddr & 0xffff) + (daddr >> 16) + (saddr & 0xffff) + (saddr >> 16) +
	      bpf_htons(IPPROTO_TCP) + bpf_htons(20);
	w = (__u16 *)th;
#pragma unroll
	for (i = 0; i < 10; i++)
		sum += w[i];
	th->check = ~fold_sum(sum);
	count(0);
	return XDP_TX;

pass:
	count(1);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
