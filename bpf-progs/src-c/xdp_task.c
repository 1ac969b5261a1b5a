// SPDX-License-Identifier: GPL-2.0
/* xdp_task: the task and time helpers XDP programs may call, each result in
 * `out` (u64 slots): 0 bpf_get_current_pid_tgid, 1 bpf_get_current_uid_gid,
 * 2-3 bpf_get_current_comm (16 bytes), 4 bpf_get_numa_node_id,
 * 5 bpf_ktime_get_tai_ns, 6 bpf_jiffies64, 7-10 bpf_strncmp of the frame's
 * bytes 0..4 and of fixed strings against constant strings; 11 BPF_SNPRINTF's
 * return value and 12-15 its 32-byte output; 16-17 the same cut to 4 bytes;
 * 18 bpf_trace_vprintk's return value; from 20 on, pairs (return value,
 * result) of bpf_strtol and bpf_strtoul on strings of the stack; 46-51
 * bpf_probe_read_kernel_str's return value and first 8 bytes copied: a
 * stack string, the same cut to 4 bytes, and NULL (-ERANGE, zeroed). XDP_PASS.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 56);
	__type(key, __u32);
	__type(value, __u64);
} out SEC(".maps");

const char abc[] = "abc";
const char abd[] = "abd";

static __always_inline void put(__u32 k, __u64 v)
{
	__u64 *slot = bpf_map_lookup_elem(&out, &k);

	if (slot)
		*slot = v;
}

SEC("xdp")
int xdp_task(struct xdp_md *ctx)
{
	char comm[16] = {};
	char s[4] = "abc";
	char t[4] = "abz";
	__u64 w[2];

	put(0, bpf_get_current_pid_tgid());
	put(1, bpf_get_current_uid_gid());
	bpf_get_current_comm(comm, sizeof(comm));
	__builtin_memcpy(w, comm, 16);
	put(2, w[0]);
	put(3, w[1]);
	put(4, bpf_get_numa_node_id());
	put(5, bpf_ktime_get_tai_ns());
	put(6, bpf_jiffies64());
	put(7, (__u64)bpf_strncmp(s, sizeof(s), abc));
	put(8, (__u64)bpf_strncmp(s, sizeof(s), abd));
	put(9, (__u64)bpf_strncmp(t, sizeof(t), abd));
	put(10, (__u64)bpf_strncmp(t, 2, abd));

	{
		char buf[32] = {};
		char small[8] = {};
		__u64 b[4];
		long n;

		n = BPF_SNPRINTF(buf, sizeof(buf), "%d|%5u|%-4x|%s|%c|%lld", -42, 7, 0xab, abc, 'Z', -1LL);
		put(11, (__u64)n);
		__builtin_memcpy(b, buf, 32);
		put(12, b[0]);
		put(13, b[1]);
		put(14, b[2]);
		put(15, b[3]);
		n = BPF_SNPRINTF(small, 4, "%d|%x", 12345, 255);
		put(16, (__u64)n);
		__builtin_memcpy(b, small, 8);
		put(17, b[0]);
		n = bpf_printk("xdp_task %d %d %d %d", 1, 2, 3, 4);
		put(18, (__u64)n);
	}
	{
		__u32 k = 20;
		long r;
#define STRTOX(fn, str, flags)					\
	do {							\
		char b_[] = str;				\
		__u64 res_ = 0x5555;				\
		r = fn(b_, sizeof(b_) - 1, flags, (void *)&res_); \
		put(k++, (__u64)r);				\
		put(k++, res_);					\
	} while (0)
		STRTOX(bpf_strtol, "  -123xyz", 0);
		STRTOX(bpf_strtol, "0x1fG", 0);
		STRTOX(bpf_strtol, "0777", 0);
		STRTOX(bpf_strtol, "ff", 16);
		STRTOX(bpf_strtol, "99999999999999999999", 10);
		STRTOX(bpf_strtoul, "-5", 0);
		STRTOX(bpf_strtol, "abc", 10);
		STRTOX(bpf_strtol, "12", 7);
		STRTOX(bpf_strtol, "9223372036854775808", 0);
		STRTOX(bpf_strtol, "-9223372036854775808", 0);
		STRTOX(bpf_strtoul, "18446744073709551615", 0);
		STRTOX(bpf_strtol, "0x", 0);
		STRTOX(bpf_strtol, "\t+7", 0);
	}
	{
		char src[12] = "hello";
		__u64 dst;

		dst = 0x5555555555555555ULL;
		put(46, (__u64)bpf_probe_read_kernel_str(&dst, sizeof(dst), src));
		put(47, dst);
		dst = 0x5555555555555555ULL;
		put(48, (__u64)bpf_probe_read_kernel_str(&dst, 4, src));
		put(49, dst);
		dst = 0x5555555555555555ULL;
		put(50, (__u64)bpf_probe_read_kernel_str(&dst, sizeof(dst), (void *)0));
		put(51, dst);
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
