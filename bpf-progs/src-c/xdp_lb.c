// SPDX-License-Identifier: GPL-2.0
/* xdp_lb: an L4 load balancer in the style of Katran's balancer_kern.c.
 *
 * - IPv4 TCP/UDP frames (IHL 5, not fragmented) whose (daddr, dport, proto)
 *   is in vip_map are balanced; everything else is XDP_PASS.
 * - A flow's real server comes from the LRU connection table conn_table
 *   (5-tuple -> real id) or, on a miss, from the VIP's Maglev-like lookup
 *   ring in ch_rings: ring[vip_num * RING_SIZE + flow_hash % RING_SIZE].
 *   The choice is then stored in conn_table.
 * - The frame is encapsulated towards the real (reals[id].addr): IPIP
 *   (outer IPv4, protocol 4), or GUE when the VIP has F_GUE (outer IPv4 +
 *   UDP to port 6080 + a 4-byte GUE header, variant 0, proto_ctype 4).
 *   bpf_xdp_adjust_head grows the headroom; the new Ethernet header goes
 *   from the old destination MAC to lb_config.gw_mac; XDP_TX.
 * - A ring slot pointing to a real with address 0 drops the frame.
 * - Per-CPU counters (packets, bytes) in lb_stats.
 *
 * flow_hash (murmur3-style mixing, all values in host order):
 *   h = mix(mix(mix(SEED, saddr), daddr), sport << 16 | dport)
 *   h = fmix(h ^ proto)
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_VIPS 4
#define RING_SIZE 13 /* a prime, as Maglev wants */
#define MAX_REALS 16
#define GUE_PORT 6080
#define HASH_SEED 0x4c4b5f31u
#define F_GUE 1

struct vip_key {
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct vip_meta {
	__u32 vip_num; /* < MAX_VIPS: which ring */
	__u32 flags;   /* F_GUE */
};

struct real_def {
	__be32 addr;
	__u32 pad;
};

struct flow_key {
	__be32 src;
	__be32 dst;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct lb_cfg {
	__u8 gw_mac[6];
	__u16 pad;
	__be32 src_addr; /* outer source address */
};

struct lb_stat {
	__u64 packets;
	__u64 bytes;
};

enum { ST_PASS = 0, ST_IPIP, ST_GUE, ST_CONN_HIT, ST_CONN_NEW, ST_DROP, ST_MAX };

struct guehdr {
	__u8 hlen_ver; /* ver:2 C:1 hlen:5, all 0 */
	__u8 proto_ctype;
	__be16 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct vip_key);
	__type(value, struct vip_meta);
} vip_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_VIPS * RING_SIZE);
	__type(key, __u32);
	__type(value, __u32);
} ch_rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_REALS);
	__type(key, __u32);
	__type(value, struct real_def);
} reals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct flow_key);
	__type(value, __u32);
} conn_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_cfg);
} lb_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_MAX);
	__type(key, __u32);
	__type(value, struct lb_stat);
} lb_stats SEC(".maps");

static __always_inline void count(__u32 idx, __u64 bytes)
{
	struct lb_stat *s = bpf_map_lookup_elem(&lb_stats, &idx);

	if (s) {
		s->packets++;
		s->bytes += bytes;
	}
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

static __always_inline __u32 flow_hash(const struct flow_key *f)
{
	__u32 h = HASH_SEED;

	h = mix(h, bpf_ntohl(f->src));
	h = mix(h, bpf_ntohl(f->dst));
	h = mix(h, ((__u32)bpf_ntohs(f->sport) << 16) | bpf_ntohs(f->dport));
	return fmix(h ^ f->proto);
}

static __always_inline __u16 ip_csum(const struct iphdr *iph)
{
	const __u16 *w = (const __u16 *)iph;
	__u32 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < 10; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

static __always_inline void fill_outer(struct iphdr *o, __u8 tos, __u16 tot_len,
				       __u8 proto, __be32 saddr, __be32 daddr)
{
	o->version = 4;
	o->ihl = 5;
	o->tos = tos;
	o->tot_len = bpf_htons(tot_len);
	o->id = 0;
	o->frag_off = 0;
	o->ttl = 64;
	o->protocol = proto;
	o->check = 0;
	o->saddr = saddr;
	o->daddr = daddr;
	o->check = ip_csum(o);
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = data_end - data;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);
	struct flow_key flow = {};
	struct vip_key vk = {};
	struct vip_meta *vip;
	struct real_def *real;
	struct lb_cfg *cfg;
	__u8 old_dst[ETH_ALEN];
	__u32 *cached, real_id, slot, zero = 0, key;
	__u16 inner_len;
	__u8 tos;
	int i;

	if ((void *)(iph + 1) > data_end)
		goto pass;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl != 5 ||
	    (iph->frag_off & bpf_htons(0x3fff)))
		goto pass;
	if (iph->protocol == IPPROTO_TCP) {
		struct tcphdr *th = (void *)(iph + 1);

		if ((void *)(th + 1) > data_end)
			goto pass;
		flow.sport = th->source;
		flow.dport = th->dest;
	} else if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *uh = (void *)(iph + 1);

		if ((void *)(uh + 1) > data_end)
			goto pass;
		flow.sport = uh->source;
		flow.dport = uh->dest;
	} else {
		goto pass;
	}
	flow.src = iph->saddr;
	flow.dst = iph->daddr;
	flow.proto = iph->protocol;

	vk.addr = flow.dst;
	vk.port = flow.dport;
	vk.proto = flow.proto;
	vip = bpf_map_lookup_elem(&vip_map, &vk);
	if (!vip)
		goto pass;
	if (vip->vip_num >= MAX_VIPS)
		goto drop;

	cached = bpf_map_lookup_elem(&conn_table, &flow);
	if (cached) {
		real_id = *cached;
		count(ST_CONN_HIT, bytes);
	} else {
		slot = vip->vip_num * RING_SIZE + flow_hash(&flow) % RING_SIZE;
		cached = bpf_map_lookup_elem(&ch_rings, &slot);
		if (!cached)
			goto drop;
		real_id = *cached;
		bpf_map_update_elem(&conn_table, &flow, &real_id, BPF_ANY);
		count(ST_CONN_NEW, bytes);
	}
	key = real_id;
	real = bpf_map_lookup_elem(&reals, &key);
	if (!real || !real->addr)
		goto drop;
	cfg = bpf_map_lookup_elem(&lb_config, &zero);
	if (!cfg)
		goto drop;

	inner_len = bpf_ntohs(iph->tot_len);
	tos = iph->tos;
#pragma unroll
	for (i = 0; i < ETH_ALEN; i++)
		old_dst[i] = eth->h_dest[i];

	if (vip->flags & F_GUE) {
		__u32 hash = flow_hash(&flow);
		struct udphdr *uh;
		struct guehdr *gh;
		struct iphdr *outer;
		int grow = sizeof(struct iphdr) + sizeof(struct udphdr) + sizeof(struct guehdr);

		if (bpf_xdp_adjust_head(ctx, -grow))
			goto drop;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		eth = data;
		outer = data + sizeof(*eth);
		uh = (void *)(outer + 1);
		gh = (void *)(uh + 1);
		if ((void *)(gh + 1) > data_end)
			goto drop;
		fill_outer(outer, tos, inner_len + grow, IPPROTO_UDP, cfg->src_addr, real->addr);
		uh->source = bpf_htons(0x8000 | (hash & 0x7fff));
		uh->dest = bpf_htons(GUE_PORT);
		uh->len = bpf_htons(inner_len + sizeof(*uh) + sizeof(*gh));
		uh->check = 0;
		gh->hlen_ver = 0;
		gh->proto_ctype = IPPROTO_IPIP;
		gh->flags = 0;
		count(ST_GUE, data_end - data);
	} else {
		struct iphdr *outer;

		if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
			goto drop;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		eth = data;
		outer = data + sizeof(*eth);
		if ((void *)(outer + 1) > data_end)
			goto drop;
		fill_outer(outer, tos, inner_len + sizeof(*outer), IPPROTO_IPIP, cfg->src_addr,
			   real->addr);
		count(ST_IPIP, data_end - data);
	}
#pragma unroll
	for (i = 0; i < ETH_ALEN; i++) {
		eth->h_source[i] = old_dst[i];
		eth->h_dest[i] = cfg->gw_mac[i];
	}
	eth->h_proto = bpf_htons(ETH_P_IP);
	return XDP_TX;

pass:
	count(ST_PASS, bytes);
	return XDP_PASS;
drop:
	count(ST_DROP, bytes);
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
