// SPDX-License-Identifier: GPL-2.0
/* Hostile pointers handed to the calls the shim interposes: each case prints
 * `NAME RESULT ERRNO` and the program ends with `done`. Run under the shim
 * and against the kernel, every case must give the same errno (EFAULT where
 * the kernel cannot read or write the caller's memory) and the process must
 * survive. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>

static void report(const char *name, long r)
{
	printf("%s %ld %d\n", name, r < 0 ? -1L : r, r < 0 ? errno : 0);
	fflush(stdout);
}

static long bpf(int cmd, void *attr, unsigned int size)
{
	return syscall(__NR_bpf, cmd, attr, size);
}

int main(void)
{
	long page = sysconf(_SC_PAGESIZE);
	/* [read-only page][PROT_NONE page] */
	char *ro = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *none = ro + page;
	char *unterminated = none - 11; /* "/sys/fs/bpf" running into `none` */
	char link[64], buf[64];
	union bpf_attr attr;
	/* volatile: the compiler may not assume the nonnull contracts hold */
	char *volatile null = NULL;
	struct stat st;
	struct statfs sfs;
	unsigned int key = 0;
	long fd;

	if (ro == MAP_FAILED)
		return 2;
	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_ARRAY;
	attr.key_size = 4;
	attr.value_size = 8;
	attr.max_entries = 1;
	fd = bpf(BPF_MAP_CREATE, &attr, sizeof(attr));
	if (fd < 0) {
		report("map_create", fd);
		return 3;
	}
	/* A read-only attribute for BPF_OBJ_GET_INFO_BY_FD: info_len cannot
	 * be written back. */
	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = fd;
	attr.info.info_len = 8;
	attr.info.info = (unsigned long)buf;
	memcpy(ro, &attr, sizeof(attr));
	memcpy(unterminated, "/sys/fs/bpf", 11);
	if (mprotect(ro, page, PROT_READ) || mprotect(none, page, PROT_NONE))
		return 2;

	report("stat_null", stat(null, &st));
	report("stat_unmapped", stat(none, &st));
	report("stat_unterminated", stat(unterminated, &st));
	report("stat_bpffs_ro_buf", stat("/sys/fs/bpf", (struct stat *)ro));
	report("stat_bpffs_null_buf", stat("/sys/fs/bpf", (struct stat *)null));
	report("lstat_unmapped", lstat(none, &st));
	report("lstat_bpffs_ro_buf", lstat("/sys/fs/bpf", (struct stat *)ro));
	report("statfs_unmapped", statfs(none, &sfs));
	report("statfs_bpffs_ro_buf", statfs("/sys/fs/bpf", (struct statfs *)ro));
	report("access_unmapped", access(none, F_OK));
	report("faccessat_unmapped", faccessat(AT_FDCWD, none, F_OK, 0));
	report("open_unmapped", open(none, O_RDONLY));
	errno = 0;
	report("fopen_unmapped", fopen(none, "r") ? 0 : -1);
	report("readlink_unmapped", readlink(none, buf, sizeof(buf)));
	report("mkdir_unmapped", mkdir(none, 0700));
	report("rmdir_unmapped", rmdir(none));
	report("unlink_unmapped", unlink(none));

	report("bpf_attr_unmapped", bpf(BPF_MAP_CREATE, none, sizeof(attr)));
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = fd;
	attr.key = (unsigned long)none;
	attr.value = (unsigned long)buf;
	report("lookup_key_unmapped", bpf(BPF_MAP_LOOKUP_ELEM, &attr, sizeof(attr)));
	attr.key = (unsigned long)&key;
	attr.value = (unsigned long)ro;
	report("lookup_value_ro", bpf(BPF_MAP_LOOKUP_ELEM, &attr, sizeof(attr)));
	attr.value = (unsigned long)none;
	report("update_value_unmapped", bpf(BPF_MAP_UPDATE_ELEM, &attr, sizeof(attr)));
	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = fd;
	attr.info.info_len = 80;
	attr.info.info = (unsigned long)ro;
	report("info_ro", bpf(BPF_OBJ_GET_INFO_BY_FD, &attr, sizeof(attr)));
	report("attr_ro", bpf(BPF_OBJ_GET_INFO_BY_FD, ro, sizeof(attr)));

	snprintf(link, sizeof(link), "/proc/self/fd/%ld", fd);
	report("readlink_fd_ro_buf", readlink(link, ro, 64));
	report("readlink_fd_unmapped_buf", readlink(link, none, 64));
	report("readlink_fd_zero", readlink(link, buf, 0));
	report("readlink_fd_ok", readlink(link, buf, sizeof(buf)));
	printf("done\n");
	return 0;
}
