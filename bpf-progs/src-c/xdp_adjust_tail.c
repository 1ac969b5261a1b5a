// SPDX-License-Identifier: GPL-2.0
/* xdp_adjust_tail: equivalents of the kernel selftests
 * test_xdp_adjust_tail_grow.c and test_xdp_adjust_tail_shrink.c, for their
 * documented expectations on pkt_v4.bin (54 bytes) and pkt_v6.bin (74):
 * - xdp_tail_shrink: 54-byte frames try to shrink by 256 (fails: XDP_DROP);
 *   others shrink by 20 (pkt_v6: 74 -> 54) and XDP_TX.
 * - xdp_tail_grow: 54 bytes try +4096 (fails: XDP_DROP); 74 grow by 40
 *   (-> 114); 64 by 128; 128 by 4096 - 256 - 320 - 128 (-> 3520, the
 *   largest linear frame); 9000 by 10 and 9001 by 4096 (multi-buffer
 *   sizes, kept from the selftest); otherwise XDP_ABORTED. XDP_TX on
 *   success.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_tail_shrink(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	int offset = 0;

	if (data_end - data == 54) /* sizeof(pkt_v4) */
		offset = 256;	   /* shrink too much */
	else
		offset = 20;
	if (bpf_xdp_adjust_tail(ctx, 0 - offset))
		return XDP_DROP;
	return XDP_TX;
}

SEC("xdp")
int xdp_tail_grow(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	int data_len = data_end - data;
	int offset = 0;

	if (data_len == 54) /* sizeof(pkt_v4) */
		offset = 4096; /* test too large offset */
	else if (data_len == 74) /* sizeof(pkt_v6) */
		offset = 40;
	else if (data_len == 64)
		offset = 128;
	else if (data_len == 128)
		offset = 4096 - 256 - 320 - data_len; /* Max tail grow 3520 */
	else if (data_len == 9000)
		offset = 10;
	else if (data_len == 9001)
		offset = 4096;
	else
		return XDP_ABORTED; /* No matching test */

	if (bpf_xdp_adjust_tail(ctx, offset))
		return XDP_DROP;
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
