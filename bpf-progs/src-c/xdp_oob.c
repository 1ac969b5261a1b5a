// SPDX-License-Identifier: GPL-2.0
/* xdp_oob: programs that read outside the regions they may touch.
 *
 * The kernel's verifier rejects every program here; a userspace runtime that
 * runs them anyway must trap the access (never crash, never return data).
 * Not part of the differential case list.
 *
 * - xdp_oob_past_end: loads 8 bytes 64 bytes past data_end, unchecked;
 * - xdp_oob_wild_ptr: dereferences a pointer read from the packet bytes;
 * - xdp_oob_stack: indexes a stack buffer with a byte from the packet
 *   (0..255 into 16 bytes).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_oob_past_end(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	volatile __u64 *p = data_end + 64;

	return (*p & 1) ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int xdp_oob_wild_ptr(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 addr;

	if (data + 16 > data_end)
		return XDP_DROP;
	/* Bytes 6..13: the source MAC and EtherType, taken as an address. */
	addr = *(__u64 *)(data + 6);
	return *(volatile __u32 *)(long)addr ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int xdp_oob_stack(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	volatile __u8 buf[16] = {};
	__u8 idx;

	if (data + 1 > data_end)
		return XDP_DROP;
	idx = *(__u8 *)data;
	return buf[idx] ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
