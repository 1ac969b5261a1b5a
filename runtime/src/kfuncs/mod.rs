//! Kernel functions (kfuncs) the runtime implements, in one table beside the helper
//! table: name -> the runtime's kfunc id, implementation and verifier prototype
//! (`verifier::protos::KFUNC_PROTOS`).
//!
//! An object calls a kfunc through an `extern ... __ksym` function: the loader turns
//! each such call into `call` with src = `BPF_PSEUDO_KFUNC_CALL` and records the name
//! (`loader::Program::kfuncs`); [`resolve`] then writes the runtime's id into imm,
//! as libbpf writes the kernel's BTF id. Programs in the store keep the runtime's ids.
//! `program::prepare` turns each kfunc call into a helper call of id
//! [`KFUNC_BASE`]` + id`, so both engines, the analysis and the prototypes treat
//! kfuncs as helpers; ids at or above `KFUNC_BASE` are refused in helper calls
//! (`helpers::check_supported`), so only a resolved kfunc call reaches them.

pub mod conntrack;
mod dynptr;
mod iter;
mod metadata;

use crate::error::{TrapKind, VerifyError};
use crate::helpers::HelperCtx;

/// Helper-table slot of kfunc 0: above every helper id the kernel defines (helper ids
/// are frozen below 256).
pub const KFUNC_BASE: i32 = 0x1_0000;

pub(crate) type KfuncFn = fn(&mut HelperCtx<'_, '_>, [u64; 5]) -> Result<u64, TrapKind>;

/// The runtime's kfunc ids: stable, since programs in the store hold them.
pub mod id {
    pub const BPF_ITER_NUM_NEW: i32 = 1;
    pub const BPF_ITER_NUM_NEXT: i32 = 2;
    pub const BPF_ITER_NUM_DESTROY: i32 = 3;
    pub const BPF_DYNPTR_FROM_XDP: i32 = 4;
    pub const BPF_DYNPTR_SLICE: i32 = 5;
    pub const BPF_DYNPTR_SLICE_RDWR: i32 = 6;
    pub const BPF_DYNPTR_SIZE: i32 = 7;
    pub const BPF_DYNPTR_ADJUST: i32 = 8;
    pub const BPF_DYNPTR_IS_NULL: i32 = 9;
    pub const BPF_DYNPTR_IS_RDONLY: i32 = 10;
    pub const BPF_DYNPTR_CLONE: i32 = 11;
    pub const BPF_XDP_METADATA_RX_TIMESTAMP: i32 = 12;
    pub const BPF_XDP_METADATA_RX_HASH: i32 = 13;
    pub const BPF_XDP_METADATA_RX_VLAN_TAG: i32 = 14;
    pub const BPF_XDP_CT_LOOKUP: i32 = 15;
    pub const BPF_CT_RELEASE: i32 = 16;
    pub const BPF_XDP_CT_ALLOC: i32 = 17;
    pub const BPF_CT_INSERT_ENTRY: i32 = 18;
    pub const BPF_CT_SET_TIMEOUT: i32 = 19;
    pub const BPF_CT_CHANGE_TIMEOUT: i32 = 20;
    pub const BPF_CT_SET_STATUS: i32 = 21;
    pub const BPF_CT_CHANGE_STATUS: i32 = 22;
}

/// The kfuncs, by name: (name, id, implementation).
pub(crate) const TABLE: &[(&str, i32, KfuncFn)] = &[
    ("bpf_iter_num_new", id::BPF_ITER_NUM_NEW, iter::num_new),
    ("bpf_iter_num_next", id::BPF_ITER_NUM_NEXT, iter::num_next),
    (
        "bpf_iter_num_destroy",
        id::BPF_ITER_NUM_DESTROY,
        iter::num_destroy,
    ),
    (
        "bpf_dynptr_from_xdp",
        id::BPF_DYNPTR_FROM_XDP,
        dynptr::from_xdp,
    ),
    ("bpf_dynptr_slice", id::BPF_DYNPTR_SLICE, dynptr::slice_ro),
    (
        "bpf_dynptr_slice_rdwr",
        id::BPF_DYNPTR_SLICE_RDWR,
        dynptr::slice_rdwr,
    ),
    ("bpf_dynptr_size", id::BPF_DYNPTR_SIZE, dynptr::size),
    ("bpf_dynptr_adjust", id::BPF_DYNPTR_ADJUST, dynptr::adjust),
    (
        "bpf_dynptr_is_null",
        id::BPF_DYNPTR_IS_NULL,
        dynptr::is_null,
    ),
    (
        "bpf_dynptr_is_rdonly",
        id::BPF_DYNPTR_IS_RDONLY,
        dynptr::is_rdonly,
    ),
    ("bpf_dynptr_clone", id::BPF_DYNPTR_CLONE, dynptr::clone),
    (
        "bpf_xdp_metadata_rx_timestamp",
        id::BPF_XDP_METADATA_RX_TIMESTAMP,
        metadata::rx_timestamp,
    ),
    (
        "bpf_xdp_metadata_rx_hash",
        id::BPF_XDP_METADATA_RX_HASH,
        metadata::rx_hash,
    ),
    (
        "bpf_xdp_metadata_rx_vlan_tag",
        id::BPF_XDP_METADATA_RX_VLAN_TAG,
        metadata::rx_vlan_tag,
    ),
    (
        "bpf_xdp_ct_lookup",
        id::BPF_XDP_CT_LOOKUP,
        conntrack::xdp_ct_lookup,
    ),
    ("bpf_ct_release", id::BPF_CT_RELEASE, conntrack::ct_release),
    (
        "bpf_xdp_ct_alloc",
        id::BPF_XDP_CT_ALLOC,
        conntrack::xdp_ct_alloc,
    ),
    (
        "bpf_ct_insert_entry",
        id::BPF_CT_INSERT_ENTRY,
        conntrack::ct_insert_entry,
    ),
    (
        "bpf_ct_set_timeout",
        id::BPF_CT_SET_TIMEOUT,
        conntrack::ct_set_timeout,
    ),
    (
        "bpf_ct_change_timeout",
        id::BPF_CT_CHANGE_TIMEOUT,
        conntrack::ct_change_timeout,
    ),
    (
        "bpf_ct_set_status",
        id::BPF_CT_SET_STATUS,
        conntrack::ct_set_status,
    ),
    (
        "bpf_ct_change_status",
        id::BPF_CT_CHANGE_STATUS,
        conntrack::ct_change_status,
    ),
];

/// Whether a program calling `name` needs the store's connection table.
pub fn uses_conntrack(name: &str) -> bool {
    name == "bpf_xdp_ct_lookup" || name.starts_with("bpf_ct_") || name == "bpf_xdp_ct_alloc"
}

/// The runtime's id of kfunc `name`.
pub fn id_of(name: &str) -> Option<i32> {
    TABLE.iter().find(|k| k.0 == name).map(|k| k.1)
}

/// The name of kfunc `id`.
pub fn name_of(id: i32) -> Option<&'static str> {
    TABLE.iter().find(|k| k.1 == id).map(|k| k.0)
}

/// The helper-table slot of kfunc `id`, when the runtime implements it (and its
/// prototype is known: the analysis must see every call's effects).
pub fn slot(id: i32) -> Option<i32> {
    name_of(id)?;
    let slot = KFUNC_BASE + id;
    crate::verifier::protos::proto(slot).map(|_| slot)
}

/// Every kfunc name the runtime implements.
pub fn names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|k| k.0)
}

/// Calls the kfunc in helper-table slot `slot` (`KFUNC_BASE + id`).
#[inline]
pub(crate) fn call(
    slot: i32,
    ctx: &mut HelperCtx<'_, '_>,
    args: [u64; 5],
) -> Option<Result<u64, TrapKind>> {
    let id = slot.checked_sub(KFUNC_BASE)?;
    TABLE.iter().find(|k| k.1 == id).map(|k| (k.2)(ctx, args))
}

/// Writes the runtime's kfunc ids into the kfunc calls of `insns`, which the loader
/// recorded in `calls` (name by slot). A kfunc the runtime does not implement is an
/// error naming it.
pub fn resolve(
    prog: &str,
    insns: &mut [isa::RawInsn],
    calls: &[loader::KfuncCall],
) -> Result<(), VerifyError> {
    for c in calls {
        let id = id_of(&c.name).filter(|id| slot(*id).is_some());
        let id = id.ok_or_else(|| VerifyError::UnsupportedKfunc {
            prog: prog.to_string(),
            pc: c.insn,
            name: c.name.clone(),
        })?;
        match insns.get_mut(c.insn) {
            Some(x)
                if x.code == isa::opcode::CALL && x.src == isa::opcode::BPF_PSEUDO_KFUNC_CALL =>
            {
                x.imm = id;
            }
            _ => {
                return Err(VerifyError::UnsupportedKfunc {
                    prog: prog.to_string(),
                    pc: c.insn,
                    name: format!("{} (not at a kfunc call)", c.name),
                })
            }
        }
    }
    Ok(())
}

/// The running kernel's BTF (`/sys/kernel/btf/vmlinux`), read once per process.
fn kernel_btf() -> Option<&'static loader::btf::Btf> {
    static BTF: std::sync::OnceLock<Option<loader::btf::Btf>> = std::sync::OnceLock::new();
    BTF.get_or_init(|| {
        let bytes = std::fs::read(loader::options::SYSTEM_BTF_PATH).ok()?;
        loader::btf::Btf::parse(&bytes).ok()
    })
    .as_ref()
}

/// Writes the runtime's kfunc ids into the kfunc calls of a program in the kernel's
/// format (`BPF_PROG_LOAD` under the shim: imm is the BTF id of the function in the
/// running kernel's BTF, as libbpf writes it), through the function's name. Returns
/// whether any call changed. A kfunc the runtime does not implement, or an id that
/// names no function of the kernel's BTF, is an error naming it.
pub fn resolve_kernel_ids(prog: &str, insns: &mut [isa::RawInsn]) -> Result<bool, VerifyError> {
    let mut changed = false;
    let mut pc = 0;
    while pc < insns.len() {
        let x = insns[pc];
        if x.code == isa::opcode::CALL && x.src == isa::opcode::BPF_PSEUDO_KFUNC_CALL {
            let unsupported = |name: String| VerifyError::UnsupportedKfunc {
                prog: prog.to_string(),
                pc,
                name,
            };
            let btf = kernel_btf().ok_or_else(|| {
                unsupported(format!(
                    "with BTF id {} (the kernel's BTF, {}, is not readable)",
                    x.imm,
                    loader::options::SYSTEM_BTF_PATH
                ))
            })?;
            let name = match btf.type_by_id(x.imm as u32) {
                Ok(t) if matches!(t.kind, loader::btf::BtfKind::Func { .. }) => {
                    btf.type_name(x.imm as u32).unwrap_or("").to_string()
                }
                _ => {
                    return Err(unsupported(format!(
                        "with BTF id {} (no function of the kernel's BTF)",
                        x.imm
                    )))
                }
            };
            let id = id_of(&name).filter(|id| slot(*id).is_some());
            insns[pc].imm = id.ok_or_else(|| unsupported(name))?;
            changed = true;
        }
        pc += if x.code == isa::opcode::LDDW { 2 } else { 1 };
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_unique() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                assert_ne!(a.0, b.0);
                assert_ne!(a.1, b.1);
            }
        }
    }
}
