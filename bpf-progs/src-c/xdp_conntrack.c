// SPDX-License-Identifier: GPL-2.0
/* xdp_conntrack: the conntrack kfuncs in the style of the kernel selftests'
 * test_bpf_nf.c: a lookup of the frame's connection misses, an entry is
 * allocated, given a mark, a timeout and a status, inserted, then found again
 * (in both directions); a second insertion of the same connection fails; the
 * lookup errors. The entry is expired (timeout 0) at the end, so the next run
 * starts from no entry, in the kernel's table and in the runtime's.
 *
 * ct_out[i] (s64):
 *  0 first lookup: opts.error (-ENOENT)     1 alloc returned an entry (1)
 *  2 bpf_ct_set_status(SEEN_REPLY)          3 set_status clearing nothing but
 *    trying to set CONFIRMED (-EBUSY)
 *  4 insert returned an entry (1)           5 its status (CONFIRMED|SEEN_REPLY)
 *  6 its mark (77, set before insertion)    7 bpf_ct_change_timeout (0)
 *  8 bpf_ct_change_status(+ASSURED) (0)     9 second lookup found it (1)
 * 10 its mark (78, written after insertion) 11 opts.dir (0)
 * 12 its status                            13 reverse lookup: opts.dir (1)
 * 14 a second insertion of the same tuple returned NULL (1)
 * 15 lookup, l4proto ICMP: error (-EPROTO) 16 tuple of 10 bytes (-EAFNOSUPPORT)
 * 17 opts of 8 bytes (-EINVAL)             18 netns_id 5 (-ENONET)
 * 19 netns_id -2 (-EINVAL)                 20 alloc, l4proto ICMP (-EPROTO)
 * 21 bpf_ct_change_timeout(0) on the entry 22 lookup after expiry (-ENOENT)
 * XDP_PASS, or XDP_DROP for frames that are not IPv4 TCP/UDP.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <asm/errno.h>

/* Linux 6.18's struct nf_conn, the fields read and written here. */
struct nf_conn {
	__u8 __head[128];
	unsigned long status;
	__u8 __mid2[32];
	__u32 mark;
} __attribute__((preserve_access_index));

struct nf_conn___init {
	struct nf_conn ct;
} __attribute__((preserve_access_index));

struct bpf_ct_opts___local {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u8 reserved[2];
};

extern struct nf_conn *bpf_xdp_ct_lookup(struct xdp_md *, struct bpf_sock_tuple *, __u32,
					 struct bpf_ct_opts___local *, __u32) __ksym;
extern struct nf_conn___init *bpf_xdp_ct_alloc(struct xdp_md *, struct bpf_sock_tuple *, __u32,
					       struct bpf_ct_opts___local *, __u32) __ksym;
extern struct nf_conn *bpf_ct_insert_entry(struct nf_conn___init *nfct_i) __ksym;
extern void bpf_ct_release(struct nf_conn *) __ksym;
extern void bpf_ct_set_timeout(struct nf_conn___init *nfct, __u32 timeout) __ksym;
extern int bpf_ct_change_timeout(struct nf_conn *nfct, __u32 timeout) __ksym;
extern int bpf_ct_set_status(const struct nf_conn___init *nfct, __u32 status) __ksym;
extern int bpf_ct_change_status(struct nf_conn *nfct, __u32 status) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 23);
	__type(key, __u32);
	__type(value, __s64);
} ct_out SEC(".maps");

static __always_inline void put(__u32 k, __s64 v)
{
	__s64 *p = bpf_map_lookup_elem(&ct_out, &k);

	if (p)
		*p = v;
}

SEC("xdp")
int xdp_conntrack(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	__be16 *ports = data + sizeof(*eth) + sizeof(*ip);
	struct bpf_ct_opts___local opts = { .netns_id = -1 };
	struct bpf_sock_tuple tup = {}, rev = {};
	struct nf_conn___init *ct;
	struct nf_conn *ins, *found;
	__u8 proto;

	if ((void *)(ports + 2) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5)
		return XDP_DROP;
	proto = ip->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return XDP_DROP;
	tup.ipv4.saddr = ip->saddr;
	tup.ipv4.daddr = ip->daddr;
	tup.ipv4.sport = ports[0];
	tup.ipv4.dport = ports[1];
	rev.ipv4.saddr = ip->daddr;
	rev.ipv4.daddr = ip->saddr;
	rev.ipv4.sport = ports[1];
	rev.ipv4.dport = ports[0];

	opts.l4proto = proto;
	found = bpf_xdp_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));
	if (found) {
		bpf_ct_release(found);
		return XDP_ABORTED;
	}
	put(0, opts.error);

	opts.error = 0;
	ct = bpf_xdp_ct_alloc(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));
	put(1, ct != NULL);
	if (!ct)
		return XDP_PASS;
	ct->ct.mark = 77;
	bpf_ct_set_timeout(ct, 10000);
	put(2, bpf_ct_set_status(ct, IPS_SEEN_REPLY));
	put(3, bpf_ct_set_status(ct, IPS_SEEN_REPLY | IPS_CONFIRMED));
	ins = bpf_ct_insert_entry(ct);
	put(4, ins != NULL);
	if (!ins)
		return XDP_PASS;
	put(5, ins->status);
	put(6, ins->mark);
	ins->mark = 78;
	put(7, bpf_ct_change_timeout(ins, 10000));
	put(8, bpf_ct_change_status(ins, IPS_SEEN_REPLY | IPS_CONFIRMED | IPS_ASSURED));
	bpf_ct_release(ins);

	opts.error = 0;
	found = bpf_xdp_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));
	put(9, found != NULL);
	if (!found)
		return XDP_PASS;
	put(10, found->mark);
	put(11, opts.dir);
	put(12, found->status);
	bpf_ct_release(found);

	found = bpf_xdp_ct_lookup(ctx, &rev, sizeof(rev.ipv4), &opts, sizeof(opts));
	if (found) {
		put(13, opts.dir);
		bpf_ct_release(found);
	}

	ct = bpf_xdp_ct_alloc(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));
	if (ct) {
		ins = bpf_ct_insert_entry(ct);
		put(14, ins == NULL);
		if (ins)
			bpf_ct_release(ins);
	}

	opts.l4proto = IPPROTO_ICMP;
	opts.error = 0;
	found = bpf_xdp_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));
	if (found)
		bpf_ct_release(found);
	put(15, opts.error);
	opts.l4proto = proto;
	found = bpf_xdp_ct_lookup(ctx, &tup, 10, &opts, sizeof(opts));
	if (found)
		bpf_ct_release(found);
	put(16, opts.error);
	opts.error = 0;
	found = bpf_xdp_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, 8);
	if (found)
		bpf_ct_release(found);
	put(17, opts.error);
	opts.netns_id = 5;
	found = bpf_xdp_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));
	if (found)
		bpf_ct_release(found);
	put(18, opts.error);
	opts.netns_id = -2;
	found = bpf_xdp_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));
	if (found)
		bpf_ct_release(found);
	put(19, opts.error);
	opts.netns_id = -1;
	opts.l4proto = IPPROTO_ICMP;
	ct = bpf_xdp_ct_alloc(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));
	if (ct) {
		ins = bpf_ct_insert_entry(ct);
		if (ins)
			bpf_ct_release(ins);
		return XDP_ABORTED;
	}
	put(20, opts.error);
	opts.l4proto = proto;

	/* Expire the entry: the next run finds none. */
	found = bpf_xdp_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));
	if (found) {
		put(21, bpf_ct_change_timeout(found, 0));
		bpf_ct_release(found);
	}
	opts.error = 0;
	found = bpf_xdp_ct_lookup(ctx, &tup, sizeof(tup.ipv4), &opts, sizeof(opts));
	if (found) {
		bpf_ct_release(found);
		return XDP_ABORTED;
	}
	put(22, opts.error);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
