// SPDX-License-Identifier: GPL-2.0
/* xdp_frags: the kernel selftests for multi-buffer frames, as xdp.frags programs
 * (loaded with BPF_F_XDP_HAS_FRAGS):
 * - xdp_frags_shrink, xdp_frags_grow: test_xdp_adjust_tail_shrink.c and
 *   test_xdp_adjust_tail_grow.c, which prog_tests/xdp_adjust_tail.c loads with
 *   BPF_F_XDP_HAS_FRAGS for its xdp_adjust_frags_tail_shrink/grow tests: the case
 *   is chosen by bpf_xdp_get_buff_len (54, 74, 64, 128, 9000, 9001 bytes) and, for
 *   9000-byte frames, by the first byte (shrink by 10, 4100 or 8200: within the
 *   last fragment, freeing it, freeing both).
 * - xdp_update_frags: test_xdp_update_frags.c (prog_tests/xdp_adjust_frags.c): the
 *   frame's first word is an offset; the 16 bytes there, which may cross the linear
 *   part and the fragments, must start and end with 0xaa; they are rewritten with
 *   0xbb and XDP_PASS.
 * Each program also records what it saw in .bss, so the maps are compared too.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u32 shrink_seen_len;
__u32 grow_seen_len;
__u32 update_seen[2]; /* buff_len, offset */

SEC("xdp.frags")
int xdp_frags_shrink(struct xdp_md *xdp)
{
	__u8 *data_end = (void *)(long)xdp->data_end;
	__u8 *data = (void *)(long)xdp->data;
	int offset = 0;

	shrink_seen_len = bpf_xdp_get_buff_len(xdp);
	switch (shrink_seen_len) {
	case 54:
		/* sizeof(pkt_v4) */
		offset = 256; /* shrink too much */
		break;
	case 9000:
		/* non-linear buff test cases */
		if (data + 1 > data_end)
			return XDP_DROP;

		switch (data[0]) {
		case 0:
			offset = 10;
			break;
		case 1:
			offset = 4100;
			break;
		case 2:
			offset = 8200;
			break;
		default:
			return XDP_DROP;
		}
		break;
	default:
		offset = 20;
		break;
	}
	if (bpf_xdp_adjust_tail(xdp, 0 - offset))
		return XDP_DROP;
	return XDP_TX;
}

SEC("xdp.frags")
int xdp_frags_grow(struct xdp_md *xdp)
{
	int data_len = bpf_xdp_get_buff_len(xdp);
	int offset = 0;
	/* SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) */
	int tailroom = 320;

	grow_seen_len = data_len;
	if (data_len == 54) { /* sizeof(pkt_v4) */
		offset = 4096; /* test too large offset */
	} else if (data_len == 74) { /* sizeof(pkt_v6) */
		offset = 40;
	} else if (data_len == 64) {
		offset = 128;
	} else if (data_len == 128) {
		/* Max tail grow 3520 */
		offset = 4096 - 256 - tailroom - data_len;
	} else if (data_len == 9000) {
		offset = 10;
	} else if (data_len == 9001) {
		offset = 4096;
	} else {
		return XDP_ABORTED; /* No matching test */
	}

	if (bpf_xdp_adjust_tail(xdp, offset))
		return XDP_DROP;
	return XDP_TX;
}

SEC("xdp.frags")
int xdp_update_frags(struct xdp_md *xdp)
{
	__u8 *data_end = (void *)(long)xdp->data_end;
	__u8 *data = (void *)(long)xdp->data;
	__u8 val[16] = {};
	__u32 offset;
	int err;

	if (data + sizeof(__u32) > data_end)
		return XDP_DROP;

	offset = *(__u32 *)data;
	update_seen[0] = bpf_xdp_get_buff_len(xdp);
	update_seen[1] = offset;
	err = bpf_xdp_load_bytes(xdp, offset, val, sizeof(val));
	if (err < 0)
		return XDP_DROP;

	if (val[0] != 0xaa || val[15] != 0xaa) /* marker */
		return XDP_DROP;

	val[0] = 0xbb; /* update the marker */
	val[15] = 0xbb;
	err = bpf_xdp_store_bytes(xdp, offset, val, sizeof(val));
	if (err < 0)
		return XDP_DROP;

	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
