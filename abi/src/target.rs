//! The target and the CPU features compiled code may rely on.
//!
//! An artifact records the target it was compiled for ([`HOST_TARGET`]
//! when compiled here) and the names of the CPU features its code uses
//! (Cranelift's x86-64 settings that were on: `has_sse41`, `has_avx2`,
//! ...). The runtime loads it only on the same target and a CPU that has
//! every one of them ([`host_has`]); a newer CPU runs code compiled for an
//! older one. This check needs no compiler, so an embedder that loads
//! precompiled artifacts does not link Cranelift.

/// The target this build runs on, as artifacts record it (Myriad runs
/// on x86-64 Linux only).
pub const HOST_TARGET: &str = if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
    "x86_64-linux"
} else {
    "unsupported"
};

/// Whether this CPU has `feature`, a Cranelift x86-64 setting name such as
/// `has_avx2`; `None` for a name this build does not know (an artifact
/// that needs it is refused).
pub fn host_has(feature: &str) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let yes = match feature {
            "has_sse3" => has!("sse3"),
            "has_ssse3" => has!("ssse3"),
            "has_cmpxchg16b" => has!("cmpxchg16b"),
            "has_sse41" => has!("sse4.1"),
            "has_sse42" => has!("sse4.2"),
            "has_avx" => has!("avx"),
            "has_avx2" => has!("avx2"),
            "has_fma" => has!("fma"),
            "has_avx_vnni" => has!("avxvnni"),
            "has_avx512bitalg" => has!("avx512bitalg"),
            "has_avx512dq" => has!("avx512dq"),
            "has_avx512vl" => has!("avx512vl"),
            "has_avx512vbmi" => has!("avx512vbmi"),
            "has_avx512f" => has!("avx512f"),
            "has_avx512vnni" => has!("avx512vnni"),
            "has_popcnt" => has!("popcnt"),
            "has_bmi1" => has!("bmi1"),
            "has_bmi2" => has!("bmi2"),
            "has_lzcnt" => has!("lzcnt"),
            _ => return None,
        };
        Some(yes)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = feature;
        None
    }
}

/// The first of `features` this CPU lacks (or does not know), if any.
pub fn first_missing<'a>(features: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    features.into_iter().find(|f| host_has(f) != Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_features_are_answered_and_unknown_ones_refused() {
        assert_eq!(
            host_has("has_sse3"),
            Some(true),
            "every x86-64 CPU Myriad runs on"
        );
        assert_eq!(host_has("has_warp_drive"), None);
        assert_eq!(
            first_missing(["has_sse3", "has_warp_drive"]),
            Some("has_warp_drive")
        );
        assert_eq!(first_missing(["has_sse3"]), None);
    }
}
