// Kfunc calls: the loader records them by name (Program::kfuncs), marks each
// call BPF_PSEUDO_KFUNC_CALL, and the runtime refuses the ones it does not
// implement, naming them.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

SEC("xdp")
int kfunc_prog(struct xdp_md *ctx)
{
	bpf_rcu_read_lock();
	bpf_rcu_read_unlock();
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
