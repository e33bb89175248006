//! The source key: what an artifact was compiled from, as a SHA-256.

use sha2::{Digest, Sha256};

use crate::{abi, CompileConfig};

/// Domain separation: no other Myriad hash starts with these bytes.
const DOMAIN: &[u8] = b"myriad source key v1\0";

/// The key of compiling `wasm` with `config` on this host: SHA-256 over a
/// domain tag, [`abi::ABI_VERSION`], this host's fingerprint
/// ([`crate::host_fingerprint`]), this compiler's version and build (a
/// fingerprint of its sources and dependencies, see `build.rs`), every
/// [`CompileConfig`] field and the exact wasm bytes (length-prefixed).
/// [`crate::compile`] records it in the artifact's metadata
/// (`Metadata::source_key`); a cache uses an entry only when the recorded
/// key equals the key of the request. It identifies what was compiled; it
/// is not a signature (anyone can compute it and write it into a file).
pub fn source_key(wasm: &[u8], config: &CompileConfig) -> [u8; 32] {
    source_key_for(wasm, config, crate::host_fingerprint())
}

/// [`source_key`] for an explicit fingerprint.
pub(crate) fn source_key_for(wasm: &[u8], config: &CompileConfig, fingerprint: u64) -> [u8; 32] {
    // Destructured so that a new setting cannot be forgotten here.
    let CompileConfig {
        guard_bytes,
        heap_reservation,
    } = *config;
    let version = concat!(
        env!("CARGO_PKG_VERSION"),
        "+",
        env!("MYRIAD_COMPILER_BUILD")
    )
    .as_bytes();
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(abi::ABI_VERSION.to_le_bytes());
    h.update(fingerprint.to_le_bytes());
    h.update((version.len() as u64).to_le_bytes());
    h.update(version);
    h.update(guard_bytes.to_le_bytes());
    h.update(heap_reservation.to_le_bytes());
    h.update((wasm.len() as u64).to_le_bytes());
    h.update(wasm);
    h.finalize().into()
}

pub use myriad_abi::hex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_covers_bytes_settings_and_fingerprint() {
        let base = source_key_for(b"\0asm\x01\0\0\0", &CompileConfig::default(), 7);
        assert_ne!(
            base,
            source_key_for(b"\0asm\x01\0\0\0 ", &CompileConfig::default(), 7)
        );
        assert_ne!(
            base,
            source_key_for(b"\0asm\x01\0\0\0", &CompileConfig::guarded(1), 7)
        );
        assert_ne!(
            source_key_for(b"\0asm\x01\0\0\0", &CompileConfig::guarded(1), 7),
            source_key_for(
                b"\0asm\x01\0\0\0",
                &CompileConfig {
                    guard_bytes: 1,
                    heap_reservation: 1
                },
                7
            )
        );
        assert_ne!(
            base,
            source_key_for(b"\0asm\x01\0\0\0", &CompileConfig::default(), 8)
        );
        assert_eq!(
            base,
            source_key_for(b"\0asm\x01\0\0\0", &CompileConfig::default(), 7)
        );
        assert_eq!(
            source_key(b"x", &CompileConfig::default()),
            source_key_for(b"x", &CompileConfig::default(), crate::host_fingerprint())
        );
    }
}
