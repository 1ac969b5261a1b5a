// Global data of every kind: .bss, .data, .rodata, .rodata.str1.1 (string
// literals), custom .data.* and .rodata.* sections, static variables.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 bss_counter;			/* .bss */
__u32 bss_array[8];			/* .bss */
static __u32 static_bss;		/* .bss, local symbol */
__u32 data_word = 0x11223344;		/* .data */
__u64 data_pair[2] = { 5, 6 };		/* .data */
static __u32 static_data = 0xabcd;	/* .data, local symbol */
const volatile __u32 ro_limit = 1500;	/* .rodata */
const volatile __u8 ro_mac[6] = { 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01 };
__u8 custom_data[5] SEC(".data.custom") = { 1, 2, 3, 4, 5 };
const volatile __u64 custom_ro SEC(".rodata.custom") = 0x0102030405060708ULL;

SEC("xdp")
int globals_prog(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = data_end - data;

	bss_counter++;
	bss_array[len & 7] += 1;
	static_bss += static_data;
	data_word += data_pair[1];
	custom_data[len & 3] = ro_mac[len & 3];
	if (len > ro_limit)
		return XDP_DROP;
	if (len == 60)
		bpf_trace_printk("short frame %d\n", sizeof("short frame %d\n"), len);
	if (len == 61)
		bpf_trace_printk("odd frame\n", sizeof("odd frame\n"));
	return custom_ro == 0x0102030405060708ULL ? XDP_PASS : XDP_ABORTED;
}

char LICENSE[] SEC("license") = "GPL";
