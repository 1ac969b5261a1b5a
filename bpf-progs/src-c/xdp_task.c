// SPDX-License-Identifier: GPL-2.0
/* xdp_task: the task and time helpers XDP programs may call, each result in
 * `out` (u64 slots): 0 bpf_get_current_pid_tgid, 1 bpf_get_current_uid_gid,
 * 2-3 bpf_get_current_comm (16 bytes), 4 bpf_get_numa_node_id,
 * 5 bpf_ktime_get_tai_ns, 6 bpf_jiffies64, 7-10 bpf_strncmp of the frame's
 * bytes 0..4 and of fixed strings against constant strings. XDP_PASS.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 12);
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
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
