// SPDX-License-Identifier: GPL-2.0
/* xdp_btf_types: maps whose keys and values have interesting BTF types, filled
 * from the packet, for comparing `xdp-runner map dump` with `bpftool map dump`
 * (the "formatted" output of bpftool's btf_dumper).
 *
 * - flows (HASH): key struct flow_key (u32, u16, u8[2], bitfields, enum) taken
 *   from the IPv4 header and the first 4 bytes after it; value = packets seen.
 * - info (ARRAY, 4 entries): slot = protocol class (0 other, 1 TCP, 2 UDP,
 *   3 ICMP); value struct flow_info: nested struct, signed ints, s32[3], union,
 *   char[8] holding a string, char[4] holding raw bytes, _Bool, an anonymous
 *   struct member, s64, enum.
 * - pcpu (PERCPU_ARRAY, 2 entries): [0] every frame, [1] IPv4 frames.
 * - .bss: last_len and totals (a DATASEC value).
 * Verdict: XDP_PASS, or XDP_ABORTED for a frame shorter than Ethernet.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

enum proto_class {
	PC_OTHER = 0,
	PC_TCP = 6,
	PC_UDP = 17,
	PC_ICMP = 1,
	PC_BROKEN = -1,
};

struct flow_key {
	__u32 saddr;
	__u16 l4_word;
	__u8 ttl_proto[2];
	__u32 version : 4, ihl : 4, tos : 8, frag_hi : 3, frag_lo : 13;
	enum proto_class cls;
};

struct counters {
	__u64 packets;
	__u64 bytes;
};

union first4 {
	__u32 word;
	__u8 bytes[4];
	__u16 halves[2];
};

struct flow_info {
	struct counters cnt;
	__s32 deltas[3];
	union first4 head;
	__s16 neg_len;
	__s8 neg_ttl;
	_Bool seen;
	char label[8];
	char raw[4];
	struct {
		__u16 id;
		__u16 check;
	};
	__s64 scaled;
	enum proto_class cls;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct flow_key);
	__type(value, __u64);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct flow_info);
} info SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct counters);
} pcpu SEC(".maps");

__u32 last_len;
struct counters totals;

static __always_inline void count(__u32 slot, __u64 len)
{
	struct counters *c = bpf_map_lookup_elem(&pcpu, &slot);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

SEC("xdp")
int xdp_btf_types(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct flow_key key = {};
	struct flow_info *fi;
	__u64 *seen, one = 1;
	__u32 slot = 0;
	__u8 *l4;

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	last_len = len;
	totals.packets++;
	totals.bytes += len;
	count(0, len);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	count(1, len);
	l4 = (__u8 *)(ip + 1);

	key.saddr = ip->saddr;
	key.ttl_proto[0] = ip->ttl;
	key.ttl_proto[1] = ip->protocol;
	key.version = ip->version;
	key.ihl = ip->ihl;
	key.tos = ip->tos;
	key.frag_hi = bpf_ntohs(ip->frag_off) >> 13;
	key.frag_lo = bpf_ntohs(ip->frag_off) & 0x1fff;
	if ((void *)(l4 + 4) <= data_end)
		key.l4_word = *(__u16 *)(l4 + 2);
	switch (ip->protocol) {
	case IPPROTO_TCP:
		key.cls = PC_TCP;
		slot = 1;
		break;
	case IPPROTO_UDP:
		key.cls = PC_UDP;
		slot = 2;
		break;
	case IPPROTO_ICMP:
		key.cls = PC_ICMP;
		slot = 3;
		break;
	default:
		key.cls = ip->ihl < 5 ? PC_BROKEN : (enum proto_class)ip->protocol;
	}
	seen = bpf_map_lookup_elem(&flows, &key);
	if (seen)
		__sync_fetch_and_add(seen, 1);
	else
		bpf_map_update_elem(&flows, &key, &one, BPF_NOEXIST);

	fi = bpf_map_lookup_elem(&info, &slot);
	if (!fi)
		return XDP_PASS;
	fi->cnt.packets++;
	fi->cnt.bytes += len;
	fi->deltas[0] = (__s32)ip->ttl - 64;
	fi->deltas[1] = -(__s32)len;
	fi->deltas[2] = (__s32)bpf_ntohs(ip->tot_len) - (__s32)len;
	fi->head.word = *(__u32 *)eth->h_dest;
	fi->neg_len = -(__s16)len;
	fi->neg_ttl = -(__s8)ip->ttl;
	fi->seen = 1;
	/* A NUL-terminated printable label: bpftool shows a string. */
	fi->label[0] = 'p';
	fi->label[1] = '0' + (ip->protocol / 10) % 10;
	fi->label[2] = '0' + ip->protocol % 10;
	fi->label[3] = 0;
	/* Raw bytes, a non-printable one before the NUL: an array of numbers. */
	fi->raw[0] = ip->ttl;
	fi->raw[1] = ip->protocol;
	fi->raw[2] = 0;
	fi->raw[3] = 0x80 | ip->tos;
	fi->id = bpf_ntohs(ip->id);
	fi->check = ip->check;
	fi->scaled = -(__s64)len * 1000000007LL;
	fi->cls = key.cls;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
