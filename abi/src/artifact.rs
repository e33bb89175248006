//! The artifact file: symbol names, the markers that find the metadata
//! and the hash cell in the file, and the hashes that check it.

/// Symbol name of the host stub of function import `index` (index among
/// function imports).
pub fn import_stub_symbol(index: u32) -> String {
    format!("myriad_import_{index}")
}

/// Symbol name of defined function `index` (index among defined
/// functions, i.e. not counting imports).
pub fn func_symbol(index: u32) -> String {
    format!("myriad_func_{index}")
}

/// Symbol name of the array-call wrapper for function `index` (in the
/// function index space: imports first).
pub fn export_wrapper_symbol(index: u32) -> String {
    format!("myriad_export_{index}")
}

/// Marker that starts the metadata blob inside an artifact file.
pub const METADATA_MARKER: [u8; 16] = *b"MYRIAD-METADATA\0";
/// Marker that starts the artifact hash cell (marker, then [`HASH_LEN`]
/// hash bytes).
pub const HASH_MARKER: [u8; 16] = *b"MYRIAD-ART-HASH\0";
/// Length of the artifact hash (SHA-256) stored after [`HASH_MARKER`].
pub const HASH_LEN: usize = 32;
/// Symbol naming the metadata data object (marker + u32 length + blob).
pub const METADATA_SYMBOL: &str = "myriad_metadata";
/// Symbol naming the hash cell (marker + [`HASH_LEN`] hash bytes).
pub const HASH_SYMBOL: &str = "myriad_artifact_hash";

/// 64-bit checksum of `bytes`. Used for the metadata checksum and the
/// target fingerprint: it detects corruption, not deliberate forgery.
///
/// Four independent lanes each take an 8-byte word per step (xor, odd
/// multiply, rotate), so the multiplies of a 32-byte block overlap: about
/// 8 bytes a cycle, where a byte-serial FNV-1a chain (ABI 10 and earlier)
/// took 2.4 ms for the 2 MiB data segment of a large module's metadata.
/// The tail (under 32 bytes) goes through FNV-1a; the lanes, the tail and
/// the length are then mixed together, so every input bit reaches every
/// output bit.
pub fn hash64(bytes: &[u8]) -> u64 {
    const MUL: [u64; 4] = [
        0x9e37_79b9_7f4a_7c15,
        0xc2b2_ae3d_27d4_eb4f,
        0x1656_67b1_9e37_79f9,
        0xd6e8_feb8_6659_fd93,
    ];
    let mut lanes: [u64; 4] = [
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    ];
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        for (i, lane) in lanes.iter_mut().enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&block[8 * i..8 * i + 8]);
            *lane = (*lane ^ u64::from_le_bytes(word))
                .wrapping_mul(MUL[i])
                .rotate_left(31);
        }
    }
    let mut tail: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in blocks.remainder() {
        tail ^= u64::from(b);
        tail = tail.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut h = (bytes.len() as u64).wrapping_mul(MUL[0]) ^ tail;
    for (i, lane) in lanes.iter().enumerate() {
        h = (h ^ lane.wrapping_mul(MUL[(i + 1) % 4]))
            .rotate_left(27)
            .wrapping_mul(MUL[i]);
    }
    h ^= h >> 29;
    h = h.wrapping_mul(MUL[1]);
    h ^ (h >> 32)
}

/// Find the single occurrence of `marker` in `file`; `None` if absent or
/// present more than once.
pub fn find_marker(file: &[u8], marker: &[u8; 16]) -> Option<usize> {
    let mut found = None;
    let mut i = 0;
    while i + marker.len() <= file.len() {
        if file[i] == marker[0] && &file[i..i + marker.len()] == marker {
            if found.is_some() {
                return None;
            }
            found = Some(i);
        }
        i += 1;
    }
    found
}

/// SHA-256 of an artifact file with its [`HASH_LEN`] hash bytes (after
/// the hash marker at `hash_at`) taken as zero. It shows the file is intact;
/// being unkeyed, it cannot show who produced it. (A file that ends inside
/// the cell is hashed as if the cell were complete; loading refuses such a
/// file before hashing.)
pub fn artifact_hash(file: &[u8], hash_at: usize) -> [u8; HASH_LEN] {
    use sha2::Digest;
    let cell = (hash_at + HASH_MARKER.len()).min(file.len());
    let rest = (cell + HASH_LEN).min(file.len());
    let mut h = sha2::Sha256::new();
    h.update(&file[..cell]);
    h.update([0u8; HASH_LEN]);
    h.update(&file[rest..]);
    h.finalize().into()
}

/// Lower-case hexadecimal of `bytes` (for keys and hashes in names and
/// messages).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_and_padded() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
