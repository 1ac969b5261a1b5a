// SPDX-License-Identifier: GPL-2.0
/* Calls bpf(BPF_MAP_CREATE) directly (no libbpf) for a 1-entry array and
 * prints `ok FD` or `err ERRNO STRERROR`. The shim's test runs it unprivileged
 * without the shim to show that the kernel refuses bpf(2) there. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>

int main(void)
{
	union bpf_attr attr;
	long fd;

	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_ARRAY;
	attr.key_size = 4;
	attr.value_size = 4;
	attr.max_entries = 1;
	fd = syscall(__NR_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
	if (fd < 0) {
		printf("err %d %s\n", errno, strerror(errno));
		return 0;
	}
	printf("ok %ld\n", fd);
	return 0;
}
