// SPDX-License-Identifier: GPL-2.0
/* A small libbpf loader, built by the shim's integration test (tests/shim/libbpf.rs)
 * at run time with `cc loader.c -lbpf -lelf -lz`. It uses only libbpf's public API
 * and runs unchanged against the kernel (as root) and under LD_PRELOAD=libxdpshim.so
 * (unprivileged), so the two outputs can be compared line by line.
 *
 * Modes:
 *   loader run OBJ PKT MIN_LEN REPEAT [hold]
 *       Opens OBJ (xdp_subprog.o), writes MIN_LEN into the .rodata variable
 *       cfg_min_len before load, loads, writes sub_stats[0] and sub_stats[1],
 *       test-runs the first program on PKT with REPEAT, then prints the result,
 *       every entry of every map, every global variable (by BTF) and the mmapped
 *       contents of .data/.bss. With `hold`, prints "held" and waits for stdin to
 *       reach EOF before closing anything (the test inspects the live process).
 *   loader load-and-pin OBJ DIR
 *       Loads OBJ (xdp_counter.o), pins its maps under DIR (DIR/<map name>) and its
 *       first program at DIR/prog, writes counter_map[2000] = 1 (when the object
 *       has counter_map), exits.
 *   loader use-pins DIR PKT REPEAT
 *       Opens DIR/prog and DIR/counter_map with bpf_obj_get, checks the entry the
 *       first process wrote, writes counter_map[1000] = 7, test-runs the program on
 *       PKT with REPEAT, prints the result and the map.
 *
 * Environment: LOADER_OBJ_NAME names the object (see open_obj), LOADER_DEBUG=1
 * shows libbpf's debug messages.
 *
 * Output: one fact per line, `word args...`; byte strings in lowercase hex.
 * Lines starting with `id ` or `duration ` differ between runs by nature.
 * Errors: `error <what> <errno> <strerror>` on stdout and exit status 1.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#define MAX_PKT 4096

static int fail(const char *what, int err)
{
	if (err < 0)
		err = -err;
	printf("error %s %d %s\n", what, err, strerror(err));
	fflush(stdout);
	exit(1);
}

static int print_fn(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level > LIBBPF_WARN && !getenv("LOADER_DEBUG"))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static void hex(const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i;

	if (n == 0)
		printf("-");
	for (i = 0; i < n; i++)
		printf("%02x", b[i]);
}

static size_t read_file(const char *path, unsigned char *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		fail("open-packet", errno);
	n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

/* Prints `map NAME key HEX value HEX` for every entry, walking with get_next_key. */
static void dump_map_fd(const char *name, int fd, __u32 key_size, __u32 value_size)
{
	unsigned char key[512], next[512], value[65536];
	void *prev = NULL;
	int n = 0, err;

	if (key_size > sizeof(key) || value_size > sizeof(value)) {
		printf("map %s too-large\n", name);
		return;
	}
	while (n < 4096) {
		err = bpf_map_get_next_key(fd, prev, next);
		if (err) {
			if (errno != ENOENT)
				fail("get-next-key", errno);
			break;
		}
		memcpy(key, next, key_size);
		prev = key;
		err = bpf_map_lookup_elem(fd, key, value);
		if (err) {
			if (errno == ENOENT)
				continue;
			fail("lookup", errno);
		}
		printf("map %s key ", name);
		hex(key, key_size);
		printf(" value ");
		hex(value, value_size);
		printf("\n");
		n++;
	}
	printf("map %s entries %d\n", name, n);
}

static void print_map_info(int fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		fail("map-info", errno);
	printf("mapinfo %s type %u key %u value %u max_entries %u flags %#x\n",
	       info.name, info.type, info.key_size, info.value_size,
	       info.max_entries, info.map_flags);
	printf("id map %s %u\n", info.name, info.id);
}

static void print_prog_info(int fd)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		fail("prog-info", errno);
	printf("proginfo %s type %u\n", info.name, info.type);
	printf("id prog %s %u\n", info.name, info.id);
}

/* The section a libbpf internal map stands for: "xdp_subp.bss" -> ".bss". */
static const char *section_of(const struct bpf_map *map)
{
	const char *name = bpf_map__name(map);
	const char *dot = strchr(name, '.');

	return dot ? dot : name;
}

static struct bpf_map *find_section_map(struct bpf_object *obj, const char *sec)
{
	struct bpf_map *map = bpf_object__find_map_by_name(obj, sec);

	if (map)
		return map;
	bpf_object__for_each_map(map, obj) {
		if (bpf_map__is_internal(map) && !strcmp(section_of(map), sec))
			return map;
	}
	return NULL;
}

/* The offset of variable NAME (of SIZE bytes) in section SEC, by the object's BTF. */
static size_t var_offset(struct bpf_object *obj, const char *sec, const char *name,
			 __u32 size)
{
	struct btf *btf = bpf_object__btf(obj);
	const struct btf_var_secinfo *vsi;
	const struct btf_type *t;
	int id, i;

	id = btf ? btf__find_by_name_kind(btf, sec, BTF_KIND_DATASEC) : -1;
	if (id < 0)
		fail("no-datasec", ENOENT);
	t = btf__type_by_id(btf, id);
	vsi = btf_var_secinfos(t);
	for (i = 0; i < btf_vlen(t); i++, vsi++) {
		const struct btf_type *v = btf__type_by_id(btf, vsi->type);

		if (!strcmp(btf__name_by_offset(btf, v->name_off), name) && vsi->size == size)
			return vsi->offset;
	}
	fail("no-variable", ENOENT);
	return 0;
}

/* Prints `var SEC NAME HEX` for every variable of a global-data map, read with
 * bpf_map_lookup_elem (key 0) and located by the object's BTF DATASEC. */
static void print_vars(struct bpf_object *obj, struct bpf_map *map)
{
	struct btf *btf = bpf_object__btf(obj);
	const char *sec = section_of(map);
	__u32 vsz = bpf_map__value_size(map), key = 0;
	const struct btf_var_secinfo *vsi;
	const struct btf_type *t;
	unsigned char *value;
	int id, i;

	if (!btf)
		return;
	id = btf__find_by_name_kind(btf, sec, BTF_KIND_DATASEC);
	if (id < 0)
		return;
	value = calloc(1, vsz);
	if (!value)
		fail("calloc", ENOMEM);
	if (bpf_map_lookup_elem(bpf_map__fd(map), &key, value))
		fail("lookup-global", errno);
	t = btf__type_by_id(btf, id);
	vsi = btf_var_secinfos(t);
	for (i = 0; i < btf_vlen(t); i++, vsi++) {
		const struct btf_type *v = btf__type_by_id(btf, vsi->type);

		if (vsi->offset + vsi->size > vsz)
			continue;
		printf("var %s %s ", sec, btf__name_by_offset(btf, v->name_off));
		hex(value + vsi->offset, vsi->size);
		printf("\n");
	}
	free(value);
}

/* Maps a BPF_F_MMAPABLE map's value (array key 0) as loaders' skeletons do. */
static unsigned char *map_mmap(struct bpf_map *map, int prot, size_t *len)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t sz = ((size_t)bpf_map__value_size(map) + page - 1) / page * page;
	void *p = mmap(NULL, sz, prot, MAP_SHARED, bpf_map__fd(map), 0);

	if (p == MAP_FAILED)
		fail("mmap", errno);
	*len = sz;
	return p;
}

static void test_run(int prog_fd, const char *pkt_path, int repeat)
{
	static unsigned char in[MAX_PKT], out[MAX_PKT + 512];
	size_t n = read_file(pkt_path, in, sizeof(in));
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		.data_in = in,
		.data_size_in = (__u32)n,
		.data_out = out,
		.data_size_out = sizeof(out),
		.repeat = repeat,
	);
	int err = bpf_prog_test_run_opts(prog_fd, &opts);

	if (err)
		fail("test-run", errno);
	printf("retval %u\n", opts.retval);
	printf("data_out ");
	hex(out, opts.data_size_out);
	printf("\n");
	printf("duration %u\n", opts.duration);
}

/* LOADER_OBJ_NAME, when set, names the object: libbpf then names the global-data
 * maps "<first 8 chars>.bss" and so on, which makes them recognisable in the
 * kernel's listing. */
static struct bpf_object *open_obj(const char *path)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = getenv("LOADER_OBJ_NAME"));
	struct bpf_object *obj = bpf_object__open_file(path, &opts);
	long err = libbpf_get_error(obj);

	if (!obj || err)
		fail("open", err ? (int)err : errno);
	return obj;
}

static void wait_stdin_eof(void)
{
	char buf[64];

	printf("held\n");
	fflush(stdout);
	while (read(0, buf, sizeof(buf)) > 0)
		;
}

static int mode_run(int argc, char **argv)
{
	const char *obj_path = argv[2], *pkt = argv[3];
	__u32 min_len = (__u32)strtoul(argv[4], NULL, 0);
	int repeat = atoi(argv[5]);
	int hold = argc > 6 && !strcmp(argv[6], "hold");
	struct bpf_object *obj = open_obj(obj_path);
	struct bpf_map *rodata, *stats, *map;
	struct bpf_program *prog;
	size_t size = 0;
	const void *init;
	int err, fd;

	/* .rodata before load: the initial image is writable until bpf_object__load. */
	rodata = find_section_map(obj, ".rodata");
	if (!rodata)
		fail("no-rodata", ENOENT);
	init = bpf_map__initial_value(rodata, &size);
	if (!init || size < 8)
		fail("rodata-initial-value", EINVAL);
	{
		size_t off = var_offset(obj, ".rodata", "cfg_min_len", 4);

		if (off + 4 > size)
			fail("cfg_min_len-offset", EINVAL);
		memcpy((char *)init + off, &min_len, 4);
	}

	err = bpf_object__load(obj);
	if (err)
		fail("load", err);

	prog = bpf_object__next_program(obj, NULL);
	if (!prog)
		fail("no-program", ENOENT);
	printf("program %s\n", bpf_program__name(prog));
	print_prog_info(bpf_program__fd(prog));

	stats = bpf_object__find_map_by_name(obj, "sub_stats");
	if (!stats)
		fail("no-sub_stats", ENOENT);
	{
		/* struct stats { u64 packets; u64 bytes; u32 len32; u32 flags32; } */
		unsigned char v0[24] = {0}, v1[24] = {0};
		__u64 packets0 = 1000, bytes0 = 5;
		__u32 k0 = 0, k1 = 1;

		memcpy(v0, &packets0, 8);
		memcpy(v0 + 8, &bytes0, 8);
		memset(v1, 0xab, sizeof(v1));
		if (bpf_map__value_size(stats) != sizeof(v0))
			fail("sub_stats-value-size", EINVAL);
		/* Low-level call on the fd, and libbpf's high-level wrapper. */
		if (bpf_map_update_elem(bpf_map__fd(stats), &k0, v0, BPF_ANY))
			fail("update-k0", errno);
		err = bpf_map__update_elem(stats, &k1, sizeof(k1), v1, sizeof(v1), BPF_EXIST);
		if (err)
			fail("update-k1", err);
		/* NOEXIST on an array is EEXIST, as in the kernel. */
		err = bpf_map_update_elem(bpf_map__fd(stats), &k1, v1, BPF_NOEXIST);
		printf("update sub_stats noexist %d\n", err ? errno : 0);
	}

	{
		/* Through a shared mapping of .data: data_counter becomes 1000
		 * before the run. */
		struct bpf_map *data = find_section_map(obj, ".data");
		size_t off = var_offset(obj, ".data", "data_counter", 8);
		__u64 counter = 1000;
		unsigned char *p;
		size_t len;

		if (!data)
			fail("no-data", ENOENT);
		if (off + 8 > bpf_map__value_size(data))
			fail("data_counter-offset", EINVAL);
		p = map_mmap(data, PROT_READ | PROT_WRITE, &len);
		memcpy(p + off, &counter, 8);
		munmap(p, len);
	}

	test_run(bpf_program__fd(prog), pkt, repeat);

	bpf_object__for_each_map(map, obj) {
		fd = bpf_map__fd(map);
		print_map_info(fd);
		dump_map_fd(bpf_map__name(map), fd, bpf_map__key_size(map),
			    bpf_map__value_size(map));
		if (bpf_map__is_internal(map)) {
			print_vars(obj, map);
			/* The live value again, through a read-only shared mapping. */
			if (bpf_map__map_flags(map) & BPF_F_MMAPABLE) {
				unsigned char *p = map_mmap(map, PROT_READ, &size);

				printf("mmap %s ", section_of(map));
				hex(p, bpf_map__value_size(map));
				printf("\n");
				munmap(p, size);
			}
		}
	}
	fflush(stdout);
	if (hold)
		wait_stdin_eof();
	bpf_object__close(obj);
	printf("done\n");
	return 0;
}

static int mode_load_and_pin(char **argv)
{
	const char *obj_path = argv[2], *dir = argv[3];
	struct bpf_object *obj = open_obj(obj_path);
	struct bpf_program *prog;
	struct bpf_map *map;
	char path[4096];
	__u32 key = 2000, value = 1;
	int err;

	err = bpf_object__load(obj);
	if (err)
		fail("load", err);
	if (mkdir(dir, 0700) && errno != EEXIST)
		fail("mkdir", errno);
	err = bpf_object__pin_maps(obj, dir);
	if (err)
		fail("pin-maps", err);
	bpf_object__for_each_map(map, obj)
		printf("pinned map %s\n", bpf_map__name(map));
	prog = bpf_object__next_program(obj, NULL);
	if (!prog)
		fail("no-program", ENOENT);
	snprintf(path, sizeof(path), "%s/prog", dir);
	err = bpf_program__pin(prog, path);
	if (err)
		fail("pin-prog", err);
	printf("pinned prog %s\n", bpf_program__name(prog));

	map = bpf_object__find_map_by_name(obj, "counter_map");
	if (map && bpf_map_update_elem(bpf_map__fd(map), &key, &value, BPF_NOEXIST))
		fail("update-2000", errno);
	bpf_object__close(obj);
	printf("done\n");
	return 0;
}

static int mode_use_pins(char **argv)
{
	const char *dir = argv[2], *pkt = argv[3];
	int repeat = atoi(argv[4]);
	char path[4096];
	__u32 key, value;
	int prog_fd, map_fd;

	snprintf(path, sizeof(path), "%s/prog", dir);
	prog_fd = bpf_obj_get(path);
	if (prog_fd < 0)
		fail("obj-get-prog", errno);
	snprintf(path, sizeof(path), "%s/counter_map", dir);
	map_fd = bpf_obj_get(path);
	if (map_fd < 0)
		fail("obj-get-map", errno);
	print_prog_info(prog_fd);
	print_map_info(map_fd);

	key = 2000;
	if (bpf_map_lookup_elem(map_fd, &key, &value))
		fail("lookup-2000", errno);
	printf("lookup counter_map 2000 %u\n", value);

	key = 1000;
	value = 7;
	if (bpf_map_update_elem(map_fd, &key, &value, BPF_NOEXIST))
		fail("update-1000", errno);

	test_run(prog_fd, pkt, repeat);
	dump_map_fd("counter_map", map_fd, 4, 4);
	close(map_fd);
	close(prog_fd);
	printf("done\n");
	return 0;
}

int main(int argc, char **argv)
{
	libbpf_set_print(print_fn);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 6 && !strcmp(argv[1], "run"))
		return mode_run(argc, argv);
	if (argc == 4 && !strcmp(argv[1], "load-and-pin"))
		return mode_load_and_pin(argv);
	if (argc == 5 && !strcmp(argv[1], "use-pins"))
		return mode_use_pins(argv);
	fprintf(stderr,
		"usage: %s run OBJ PKT MIN_LEN REPEAT [hold]\n"
		"       %s load-and-pin OBJ DIR\n"
		"       %s use-pins DIR PKT REPEAT\n",
		argv[0], argv[0], argv[0]);
	return 2;
}
