// An extern .kconfig variable: the loader must refuse it (Extern).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern unsigned int CONFIG_HZ __kconfig;

SEC("xdp")
int kconfig_prog(struct xdp_md *ctx)
{
	return CONFIG_HZ > 100 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
