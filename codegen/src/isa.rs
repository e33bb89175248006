//! The host target ISA used for compilation and its fingerprint.

use std::sync::OnceLock;

use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};

use crate::abi;
use crate::error::CompileError;

/// The host ISA, built once per process (building it probes CPU features).
pub(crate) fn host_isa() -> Result<OwnedTargetIsa, CompileError> {
    static ISA: OnceLock<Result<OwnedTargetIsa, String>> = OnceLock::new();
    ISA.get_or_init(build_host_isa)
        .clone()
        .map_err(CompileError::Codegen)
}

fn build_host_isa() -> Result<OwnedTargetIsa, String> {
    let mut flags = settings::builder();
    let set = |flags: &mut settings::Builder, name: &str, value: &str| {
        flags
            .set(name, value)
            .map_err(|e| format!("cranelift setting {name}={value}: {e}"))
    };
    set(&mut flags, "opt_level", "speed")?;
    // The code ends up in a shared object: it must be position independent
    // so that `cc -shared` needs no text relocations.
    set(&mut flags, "is_pic", "true")?;
    // No stack probes: instance stacks are small and explicitly bounded, and
    // every function that has a frame or makes calls checks its frame
    // against `vmctx.stack_limit` in the prologue (Cranelift's stack-limit
    // check). Probes would also call `__cranelift_probestack`, a symbol the
    // artifact cannot link against.
    set(&mut flags, "enable_probestack", "false")?;
    // The runtime never unwinds through guest frames: traps switch stacks.
    set(&mut flags, "unwind_info", "false")?;
    set(
        &mut flags,
        "enable_verifier",
        if cfg!(debug_assertions) {
            "true"
        } else {
            "false"
        },
    )?;
    // Multi-value functions may return more values than fit in registers;
    // Cranelift then passes a hidden return area. Only compiled code calls
    // these functions directly (the runtime goes through array wrappers).
    set(&mut flags, "enable_multi_ret_implicit_sret", "true")?;
    // The fuel counter lives in the pinned register (`r15`), which the
    // register allocator never hands out: see `FuncTranslator::fuel`.
    set(&mut flags, "enable_pinned_reg", "true")?;
    // Block start offsets, where `fuel_rewrite` looks for fuel checks to
    // shorten (a block start is a known instruction boundary).
    set(&mut flags, "machine_code_cfg_info", "true")?;
    let builder = cranelift_native::builder().map_err(|e| format!("host ISA: {e}"))?;
    builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| format!("host ISA: {e}"))
}

/// The fingerprint string hashed by [`fingerprint`]: target triple, every
/// ISA flag (CPU features) and the shared flags that change generated code.
pub(crate) fn fingerprint_text(isa: &OwnedTargetIsa) -> String {
    let mut text = format!("triple={};", isa.triple());
    for value in isa.isa_flags() {
        text.push_str(&value.to_string());
        text.push(';');
    }
    let shared = isa.flags();
    text.push_str(&format!(
        "is_pic={};opt_level={};enable_pinned_reg={};",
        shared.is_pic(),
        shared.opt_level(),
        shared.enable_pinned_reg()
    ));
    text
}

/// The CPU features `isa` lets compiled code use: the names of its x86-64
/// settings that are on (`has_sse41`, `has_avx2`, ...), sorted. The runtime
/// loads the code only where the CPU has all of them.
pub(crate) fn cpu_features(isa: &OwnedTargetIsa) -> Vec<String> {
    let mut names: Vec<String> = isa
        .isa_flags()
        .into_iter()
        .filter(|v| v.name.starts_with("has_") && v.as_bool() == Some(true))
        .map(|v| v.name.to_string())
        .collect();
    names.sort_unstable();
    names
}

/// Fingerprint of `isa` as recorded in artifact metadata.
pub(crate) fn fingerprint(isa: &OwnedTargetIsa) -> u64 {
    abi::hash64(fingerprint_text(isa).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cpu_feature_the_compiler_uses_is_known_to_the_loader() {
        let isa = host_isa().expect("host ISA");
        let features = cpu_features(&isa);
        assert!(!features.is_empty());
        for f in &features {
            assert_eq!(
                myriad_abi::target::host_has(f),
                Some(true),
                "{f}: the loader must know every feature the compiler turns on"
            );
        }
    }

    #[test]
    fn fingerprint_covers_triple_features_and_flags() {
        let isa = host_isa().expect("host ISA");
        let text = fingerprint_text(&isa);
        assert!(
            text.starts_with(&format!("triple={};", isa.triple())),
            "{text}"
        );
        assert!(text.contains("is_pic=true;"), "{text}");
        assert!(text.contains("opt_level=speed;"), "{text}");
        #[cfg(target_arch = "x86_64")]
        assert!(text.contains("has_sse41="), "{text}");
        assert_eq!(fingerprint(&isa), crate::host_fingerprint());
    }
}
