// XDP attachment by BPF links, step by step: one line per step with the
// errno it gave (0 for success) and the facts that must agree between the
// kernel and the shim (program ids are printed as p1/p2, never as numbers).
// Usage: xdp_attach OBJ IFNAME
//        xdp_attach OBJ IFNAME hold [PIN]  (bpf_program__attach_xdp, pin the
//                                      link at PIN, print "attached", keep the
//                                      link until stdin ends)
#include <errno.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static __u32 p1_id, p2_id;

static const char *who(__u32 id)
{
	return id == p1_id ? "p1" : id == p2_id ? "p2" : id == 0 ? "none" : "other";
}

static int step(const char *what, int r)
{
	printf("%s %d\n", what, r < 0 ? -errno : 0);
	return r;
}

static __u32 prog_id(int fd)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return 0;
	return info.id;
}

static void link_info(const char *what, int fd, unsigned ifindex)
{
	struct bpf_link_info info;
	__u32 len = sizeof(info);
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		printf("%s info %d\n", what, -errno);
		return;
	}
	printf("%s info type %u prog %s ifindex %s\n", what, info.type, who(info.prog_id),
	       info.xdp.ifindex == ifindex ? "dev" : info.xdp.ifindex == 0 ? "0" : "other");
}

static void query(const char *what, unsigned ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	if (bpf_xdp_query(ifindex, 0, &q)) {
		printf("%s query %d\n", what, -errno);
		return;
	}
	printf("%s query mode %u prog %s skb %s drv %s hw %s\n", what, q.attach_mode,
	       who(q.prog_id), who(q.skb_prog_id), who(q.drv_prog_id), who(q.hw_prog_id));
}

static int load(const char *path, struct bpf_object **out)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	if (!obj || libbpf_get_error(obj))
		return -1;
	if (bpf_object__load(obj))
		return -1;
	*out = obj;
	return bpf_program__fd(bpf_object__next_program(obj, NULL));
}

int main(int argc, char **argv)
{
	struct bpf_object *o1, *o2;
	LIBBPF_OPTS(bpf_link_create_opts, lopts);
	LIBBPF_OPTS(bpf_link_update_opts, uopts);
	int p1, p2, l1, l2, l3, fd;
	unsigned ifindex;
	__u32 id;

	if (argc != 3 && !(argc >= 4 && argc <= 5 && !strcmp(argv[3], "hold"))) {
		fprintf(stderr, "usage: %s OBJ IFNAME [hold [PIN]]\n", argv[0]);
		return 2;
	}
	libbpf_set_print(NULL);
	ifindex = if_nametoindex(argv[2]);
	p1 = load(argv[1], &o1);
	p2 = load(argv[1], &o2);
	if (p1 < 0 || p2 < 0 || !ifindex) {
		printf("setup failed %d\n", -errno);
		return 1;
	}
	p1_id = prog_id(p1);
	p2_id = prog_id(p2);
	if (argc >= 4) {
		char buf[64];
		struct bpf_link *link =
			bpf_program__attach_xdp(bpf_object__next_program(o1, NULL), ifindex);
		if (!link || libbpf_get_error(link)) {
			printf("attach failed %d\n", -errno);
			return 1;
		}
		if (argc == 5 && bpf_link__pin(link, argv[4])) {
			printf("pin failed %d\n", -errno);
			return 1;
		}
		printf("attached\n");
		fflush(stdout);
		while (fgets(buf, sizeof(buf), stdin))
			;
		bpf_link__destroy(link);
		printf("done\n");
		return 0;
	}

	l1 = step("create p1", bpf_link_create(p1, ifindex, BPF_XDP, NULL));
	link_info("l1", l1, ifindex);
	step("create p2 busy", bpf_link_create(p2, ifindex, BPF_XDP, NULL));
	lopts.flags = XDP_FLAGS_REPLACE;
	step("create flags replace", bpf_link_create(p2, ifindex, BPF_XDP, &lopts));
	lopts.flags = XDP_FLAGS_SKB_MODE | XDP_FLAGS_DRV_MODE;
	step("create two modes", bpf_link_create(p2, ifindex, BPF_XDP, &lopts));
	lopts.flags = XDP_FLAGS_UPDATE_IF_NOEXIST;
	step("create noexist flag", bpf_link_create(p2, ifindex, BPF_XDP, &lopts));
	step("create no device", bpf_link_create(p2, 0x7ffffff0, BPF_XDP, NULL));
	step("create map fd", bpf_link_create(bpf_map__fd(bpf_object__next_map(o1, NULL)),
					      ifindex, BPF_XDP, NULL));

	step("update p2", bpf_link_update(l1, p2, NULL));
	link_info("l1", l1, ifindex);
	uopts.flags = BPF_F_REPLACE;
	uopts.old_prog_fd = p1;
	step("update replace wrong old", bpf_link_update(l1, p1, &uopts));
	uopts.old_prog_fd = p2;
	step("update replace", bpf_link_update(l1, p1, &uopts));
	link_info("l1", l1, ifindex);
	uopts.flags = 0;
	step("update old without replace", bpf_link_update(l1, p1, &uopts));

	step("detach", bpf_link_detach(l1));
	link_info("l1", l1, ifindex);
	step("update detached", bpf_link_update(l1, p2, NULL));

	lopts.flags = XDP_FLAGS_SKB_MODE;
	l2 = step("create p2 skb", bpf_link_create(p2, ifindex, BPF_XDP, &lopts));
	link_info("l2", l2, ifindex);
	lopts.flags = XDP_FLAGS_DRV_MODE;
	step("create p1 drv beside skb", bpf_link_create(p1, ifindex, BPF_XDP, &lopts));

	// The id space of links: l2's id is listed, and its descriptor by id says the same.
	id = 0;
	while (!bpf_link_get_next_id(id, &id)) {
		fd = bpf_link_get_fd_by_id(id);
		if (fd < 0)
			continue;
		struct bpf_link_info info;
		__u32 len = sizeof(info);
		memset(&info, 0, sizeof(info));
		if (!bpf_obj_get_info_by_fd(fd, &info, &len) && info.type == BPF_LINK_TYPE_XDP &&
		    info.xdp.ifindex == ifindex)
			link_info("by id", fd, ifindex);
		close(fd);
	}

	// Closing the last descriptor of a link detaches it.
	close(l2);
	l3 = step("create p1 after close", bpf_link_create(p1, ifindex, BPF_XDP, NULL));
	link_info("l3", l3, ifindex);
	close(l3);
	close(l1);

	// Netlink attachment (libbpf's bpf_xdp_attach: RTM_SETLINK with IFLA_XDP).
	LIBBPF_OPTS(bpf_xdp_attach_opts, xopts);
	query("nl empty", ifindex);
	step("nl attach p1 skb", bpf_xdp_attach(ifindex, p1, XDP_FLAGS_SKB_MODE, NULL));
	query("nl p1", ifindex);
	step("nl attach p2 noexist",
	     bpf_xdp_attach(ifindex, p2, XDP_FLAGS_SKB_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST, NULL));
	xopts.old_prog_fd = p2;
	step("nl replace wrong old", bpf_xdp_attach(ifindex, p2, XDP_FLAGS_SKB_MODE, &xopts));
	xopts.old_prog_fd = p1;
	step("nl replace", bpf_xdp_attach(ifindex, p2, XDP_FLAGS_SKB_MODE, &xopts));
	query("nl p2", ifindex);
	step("nl attach drv beside skb", bpf_xdp_attach(ifindex, p1, XDP_FLAGS_DRV_MODE, NULL));
	lopts.flags = XDP_FLAGS_SKB_MODE;
	step("nl link over prog", bpf_link_create(p1, ifindex, BPF_XDP, &lopts));
	step("nl two modes", bpf_xdp_attach(ifindex, p1, XDP_FLAGS_SKB_MODE | XDP_FLAGS_DRV_MODE,
					     NULL));
	step("nl detach", bpf_xdp_detach(ifindex, XDP_FLAGS_SKB_MODE, NULL));
	query("nl detached", ifindex);
	step("nl detach again", bpf_xdp_detach(ifindex, XDP_FLAGS_SKB_MODE, NULL));
	step("nl attach bad fd", bpf_xdp_attach(ifindex, 999, 0, NULL));
	step("nl attach map fd",
	     bpf_xdp_attach(ifindex, bpf_map__fd(bpf_object__next_map(o1, NULL)), 0, NULL));
	step("nl attach lo drv", bpf_xdp_attach(1, p1, XDP_FLAGS_DRV_MODE, NULL));
	step("nl attach hw", bpf_xdp_attach(ifindex, p1, XDP_FLAGS_HW_MODE, NULL));
	step("nl attach lo hw", bpf_xdp_attach(1, p1, XDP_FLAGS_HW_MODE, NULL));
	lopts.flags = XDP_FLAGS_HW_MODE;
	step("link hw", bpf_link_create(p1, ifindex, BPF_XDP, &lopts));
	step("nl detach hw", bpf_xdp_detach(ifindex, XDP_FLAGS_HW_MODE, NULL));
	step("nl attach no device", bpf_xdp_attach(0x7ffffff0, p1, 0, NULL));
	l3 = step("nl link", bpf_link_create(p1, ifindex, BPF_XDP, NULL));
	query("nl link", ifindex);
	step("nl detach over link", bpf_xdp_detach(ifindex, 0, NULL));
	step("nl attach over link", bpf_xdp_attach(ifindex, p2, 0, NULL));
	close(l3);
	query("nl link closed", ifindex);
	step("nl attach p2 drv", bpf_xdp_attach(ifindex, p2, 0, NULL));
	query("nl p2 drv", ifindex);
	step("nl detach drv", bpf_xdp_detach(ifindex, 0, NULL));
	printf("done\n");
	return 0;
}
