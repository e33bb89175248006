//! Fuzzing the loaders: mutated wasm bytes into the compiler, mutated
//! artifacts into `Module::from_artifact_bytes`. Either must return `Ok`
//! or `Err`; a panic is caught and reported, a crash kills the process
//! (the long-running command runs its work in a child process and saves
//! the input that killed it).
//!
//! Artifact mutations come in two kinds:
//!
//! - **raw**: bytes anywhere in the file are changed and nothing is
//!   repaired. The artifact hash must catch every one of them, so the
//!   load must fail.
//! - **metadata**: the metadata blob is changed (bytes of its payload, or
//!   a decoded field, re-encoded) and then its checksum and the artifact
//!   hash are recomputed and patched in, so the change gets past the
//!   integrity checks to the decoder and the loader's own checks (symbol
//!   resolution, the vmctx size, trap tables, global initial values).
//!   The load may fail or succeed, but must not panic or crash. A loaded
//!   module is dropped without being instantiated: the metadata of an
//!   artifact is trusted once its hash matches (as a shared library's
//!   contents are), so running code against lying metadata is out of
//!   scope.

use crate::gen::Bounds;
use crate::rng::Rng;
use myriad_abi::{self as abi, ConstOp, ExportKind, Metadata, TrapKind, ValType};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// What a loader did with one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadVerdict {
    /// Accepted it.
    Ok,
    /// Refused it with this error (the first words of it).
    Err(String),
    /// Panicked with this message: always a failure.
    Panic(String),
}

/// The message of a caught panic.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".into()
    }
}

/// The kind of an error message, for counting refusals by kind: without
/// the artifact's placeholder path, cut before numbers, hashes and details
/// in parentheses.
pub fn error_kind(msg: &str) -> String {
    let msg = msg
        .replace("artifact <artifact bytes> ", "")
        .replace("<artifact bytes> ", "");
    let mut cut = msg
        .find(|c: char| c == '(' || c.is_ascii_digit())
        .unwrap_or(msg.len());
    for stop in [": its ", " at offset", ": it was compiled", ": its code"] {
        if let Some(i) = msg.find(stop) {
            cut = cut.min(i);
        }
    }
    let mut k = msg[..cut].trim().trim_end_matches([':', ',']).to_string();
    k.truncate(80);
    k
}

/// 1 to 4 random mutations of `wasm`: bit flips, interesting bytes,
/// insertions, deletions, duplicated chunks and truncation.
pub fn mutate_wasm(wasm: &[u8], r: &mut Rng) -> Vec<u8> {
    let mut out = wasm.to_vec();
    let n = r.range(1, 4);
    for _ in 0..n {
        if out.is_empty() {
            out.push(0);
        }
        let len = out.len() as u64;
        let at = r.below(len) as usize;
        match r.below(7) {
            0 => out[at] ^= 1 << r.below(8),
            1 => out[at] = *r.pick(&[0x00, 0x01, 0x7f, 0x80, 0xff, 0x40, 0x41, 0x0b, 0x20]),
            2 => {
                let k = r.range(1, 8) as usize;
                let bytes = r.bytes(k);
                out.splice(at..at, bytes);
            }
            3 => {
                let k = (r.range(1, 16) as usize).min(out.len() - at);
                out.drain(at..at + k);
            }
            4 => {
                let k = (r.range(1, 32) as usize).min(out.len() - at);
                let chunk = out[at..at + k].to_vec();
                let to = r.below(out.len() as u64) as usize;
                out.splice(to..to, chunk);
            }
            5 => out.truncate(at.max(8)),
            _ => {
                // An LEB128 made longer or a count bumped.
                out[at] = out[at].wrapping_add(*r.pick(&[1, 255, 16, 128]));
            }
        }
    }
    out
}

/// Compile `wasm` with the Myriad compiler, catching panics.
pub fn compile_checked(wasm: &[u8], bounds: Bounds) -> (LoadVerdict, Option<Vec<u8>>) {
    let config = bounds.config();
    match catch_unwind(AssertUnwindSafe(|| myriad_codegen::compile(wasm, &config))) {
        Ok(Ok(bytes)) => (LoadVerdict::Ok, Some(bytes)),
        Ok(Err(e)) => (LoadVerdict::Err(e.to_string()), None),
        Err(p) => (LoadVerdict::Panic(panic_message(&*p)), None),
    }
}

/// Load artifact `bytes` through `cache` (then drop the module and remove
/// the cache entry), catching panics.
pub fn load_checked(bytes: &[u8], cache: &Path) -> LoadVerdict {
    let r = catch_unwind(AssertUnwindSafe(|| {
        myriad_runtime::Module::from_artifact_bytes(bytes, cache).map(drop)
    }));
    if let Ok(dir) = std::fs::read_dir(cache) {
        for e in dir.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    match r {
        Ok(Ok(())) => LoadVerdict::Ok,
        Ok(Err(e)) => LoadVerdict::Err(e.to_string()),
        Err(p) => LoadVerdict::Panic(panic_message(&*p)),
    }
}

/// Where the metadata blob of an artifact is: `(length field offset,
/// blob offset, blob length)`.
pub fn metadata_span(art: &[u8]) -> Option<(usize, usize, usize)> {
    let at = abi::find_marker(art, &abi::METADATA_MARKER)?;
    let len_at = at + abi::METADATA_MARKER.len();
    let len = u32::from_le_bytes(art.get(len_at..len_at + 4)?.try_into().ok()?) as usize;
    let blob = len_at + 4;
    art.get(blob..blob + len)?;
    Some((len_at, blob, len))
}

/// Recompute and patch the artifact hash of `art`.
pub fn rehash(art: &mut [u8]) -> Option<()> {
    let at = abi::find_marker(art, &abi::HASH_MARKER)?;
    let hash = abi::artifact_hash(art, at);
    let cell = at + abi::HASH_MARKER.len();
    art.get_mut(cell..cell + abi::HASH_LEN)?
        .copy_from_slice(&hash);
    Some(())
}

/// 1 to 3 raw changes anywhere in the file, nothing repaired: the load
/// must fail. Returns `None` if the changes happened to cancel out.
pub fn raw_artifact_mutant(art: &[u8], r: &mut Rng) -> Option<Vec<u8>> {
    let mut out = art.to_vec();
    for _ in 0..r.range(1, 3) {
        match r.below(4) {
            0 if out.len() > 1 => {
                let keep = r.below(out.len() as u64) as usize;
                out.truncate(keep);
            }
            1 => {
                let at = r.below(out.len() as u64 + 1) as usize;
                out.insert(at, r.next_u64() as u8);
            }
            _ if !out.is_empty() => {
                let at = r.below(out.len() as u64) as usize;
                out[at] ^= 1 << r.below(8);
            }
            _ => {}
        }
    }
    (out != art).then_some(out)
}

/// A metadata mutation that gets past the integrity checks: the blob is
/// changed, then its checksum and the artifact hash are recomputed.
/// Returns the mutant and a short description of what was changed.
pub fn metadata_mutant(art: &[u8], r: &mut Rng) -> Option<(Vec<u8>, String)> {
    let (len_at, blob_at, len) = metadata_span(art)?;
    let blob = &art[blob_at..blob_at + len];
    let (new_blob, what) = if r.chance(1, 2) {
        payload_bytes_mutant(blob, r)?
    } else {
        let mut md = Metadata::decode(blob).ok()?;
        let what = mutate_metadata(&mut md, r);
        let enc = md.encode();
        if enc.len() > len {
            return None;
        }
        (enc, what)
    };
    let mut out = art.to_vec();
    out[blob_at..blob_at + new_blob.len()].copy_from_slice(&new_blob);
    out[len_at..len_at + 4].copy_from_slice(&(new_blob.len() as u32).to_le_bytes());
    rehash(&mut out)?;
    (out != art).then_some((out, what))
}

/// Byte-level changes to the payload (after the 8-byte checksum), with the
/// checksum recomputed.
fn payload_bytes_mutant(blob: &[u8], r: &mut Rng) -> Option<(Vec<u8>, String)> {
    if blob.len() < 12 {
        return None;
    }
    let mut b = blob.to_vec();
    let mut what = Vec::new();
    for _ in 0..r.range(1, 3) {
        if b.len() <= 12 {
            break;
        }
        // Skip the checksum and the ABI version (a changed version is
        // refused by number, which the structural mutations cover).
        let at = 12 + r.below((b.len() - 12) as u64) as usize;
        match r.below(4) {
            0 => {
                b[at] ^= 1 << r.below(8);
                what.push(format!("flip at {at}"));
            }
            1 => {
                let v: u32 = *r.pick(&[0, 1, 2, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, u32::MAX]);
                let end = (at + 4).min(b.len());
                let bytes = v.to_le_bytes();
                b[at..end].copy_from_slice(&bytes[..end - at]);
                what.push(format!("u32 {v:#x} at {at}"));
            }
            2 => {
                b[at] = r.next_u64() as u8;
                what.push(format!("byte at {at}"));
            }
            _ => {
                let cut = at.max(12);
                b.truncate(cut);
                what.push(format!("truncated to {cut}"));
            }
        }
    }
    let sum = abi::hash64(&b[8..]);
    b[..8].copy_from_slice(&sum.to_le_bytes());
    Some((b, what.join(", ")))
}

fn some_index<T>(v: &[T], r: &mut Rng) -> Option<usize> {
    (!v.is_empty()).then(|| r.below(v.len() as u64) as usize)
}

fn odd_u32(r: &mut Rng) -> u32 {
    *r.pick(&[
        0,
        1,
        2,
        3,
        7,
        100,
        0xffff,
        0x7fff_ffff,
        0xffff_fffe,
        u32::MAX,
    ])
}

fn odd_u64(r: &mut Rng) -> u64 {
    *r.pick(&[
        0,
        1,
        2,
        0xffff,
        0x1_0000,
        0x7fff_ffff,
        0xffff_ffff,
        1 << 32,
        u64::MAX / 2,
        u64::MAX,
    ])
}

fn odd_valtype(r: &mut Rng) -> ValType {
    *r.pick(&[
        ValType::I32,
        ValType::I64,
        ValType::F32,
        ValType::F64,
        ValType::FuncRef,
        ValType::ExternRef,
    ])
}

/// Change one decoded field of the metadata; say which.
fn mutate_metadata(md: &mut Metadata, r: &mut Rng) -> String {
    let pick = r.below(24);
    match pick {
        0 => {
            md.abi_version = odd_u32(r);
            "abi_version".into()
        }
        1 => {
            md.target = "riscv64-linux".into();
            "target".into()
        }
        2 => {
            md.cpu_features.pop();
            "cpu_features popped".into()
        }
        3 => {
            md.guard_bytes = odd_u64(r);
            "guard_bytes".into()
        }
        4 => {
            if let Some(i) = some_index(&md.func_types, r) {
                md.func_types[i] = odd_u32(r).min(md.types.len() as u32 + 1);
            }
            "func_types entry".into()
        }
        5 => {
            md.func_types.pop();
            "func_types popped".into()
        }
        6 => {
            if let Some(i) = some_index(&md.types, r) {
                let t = &mut md.types[i];
                if r.chance(1, 2) {
                    t.params.pop();
                    t.results.pop();
                } else if let Some(p) = t.params.first_mut() {
                    *p = odd_valtype(r);
                }
            }
            "a function type".into()
        }
        7 => {
            if let Some(m) = md.memory.as_mut() {
                match r.below(3) {
                    0 => m.min_pages = odd_u64(r),
                    1 => m.max_pages = Some(odd_u64(r)),
                    _ => m.page_size_log2 = *r.pick(&[0, 1, 12, 16, 17, 63, 64, 255]),
                }
            } else {
                md.memory = Some(abi::MemoryDecl {
                    min_pages: odd_u64(r),
                    max_pages: None,
                    page_size_log2: 16,
                });
            }
            "memory".into()
        }
        8 => {
            if let Some(i) = some_index(&md.globals, r) {
                let g = &mut md.globals[i];
                match r.below(3) {
                    0 => g.ty = odd_valtype(r),
                    1 => g.mutable = !g.mutable,
                    _ => {
                        let (a, b, c) = (odd_u32(r), odd_u32(r), odd_u64(r));
                        g.init.0 = vec![*r.pick(&[
                            ConstOp::GlobalGet(a),
                            ConstOp::RefFunc(b),
                            ConstOp::I32Add,
                            ConstOp::I64(c),
                        ])]
                    }
                }
            }
            "a global".into()
        }
        9 => {
            md.globals.pop();
            md.global_refs.pop();
            "globals popped".into()
        }
        10 => {
            if let Some(i) = some_index(&md.data, r) {
                let d = &mut md.data[i];
                d.offset = abi::ConstExpr(vec![ConstOp::I32(odd_u32(r))]);
                d.passive = r.chance(1, 4);
            }
            "a data segment".into()
        }
        11 => {
            if let Some(i) = some_index(&md.tables, r) {
                let t = &mut md.tables[i];
                match r.below(3) {
                    0 => t.min = odd_u64(r),
                    1 => t.max = Some(odd_u64(r)),
                    _ => t.ty = odd_valtype(r),
                }
            }
            "a table".into()
        }
        12 => {
            if let Some(i) = some_index(&md.elems, r) {
                let e = &mut md.elems[i];
                match r.below(3) {
                    0 => {
                        e.mode = abi::ElemMode::Active {
                            table: odd_u32(r),
                            offset: abi::ConstExpr(vec![ConstOp::I32(odd_u32(r))]),
                        }
                    }
                    1 => {
                        if let Some(j) = some_index(&e.items, r) {
                            e.items[j] = abi::ElemItem::Func(odd_u32(r));
                        }
                    }
                    _ => {
                        if let Some(j) = some_index(&e.items, r) {
                            e.items[j] = abi::ElemItem::Global(odd_u32(r));
                        }
                    }
                }
            }
            "an element segment".into()
        }
        13 => {
            md.func_refs = !md.func_refs;
            "func_refs flag".into()
        }
        14 => {
            if let Some(i) = some_index(&md.exports, r) {
                let e = &mut md.exports[i];
                match r.below(2) {
                    0 => e.index = odd_u32(r),
                    _ => {
                        e.kind = *r.pick(&[
                            ExportKind::Func,
                            ExportKind::Table,
                            ExportKind::Memory,
                            ExportKind::Global,
                            ExportKind::Tag,
                        ])
                    }
                }
            }
            "an export".into()
        }
        15 => {
            md.start = Some(odd_u32(r));
            "start".into()
        }
        16 => {
            if let Some(i) = some_index(&md.traps, r) {
                let t = &mut md.traps[i];
                match r.below(3) {
                    0 => t.func_index = odd_u32(r),
                    1 => t.offset = odd_u32(r),
                    _ => t.kind = *r.pick(&TrapKind::ALL),
                }
            }
            "a trap site".into()
        }
        17 => {
            md.traps.clear();
            "trap sites cleared".into()
        }
        18 => {
            if let Some(i) = some_index(&md.wrappers, r) {
                let w = &mut md.wrappers[i];
                if r.chance(1, 2) {
                    w.frame_bytes = odd_u32(r);
                } else if let Some(j) = some_index(&w.traps, r) {
                    w.traps[j].0 = odd_u32(r);
                }
            }
            "a wrapper".into()
        }
        19 => {
            md.wrappers.pop();
            "wrappers popped".into()
        }
        20 => {
            md.stubs.pop();
            md.imports.pop();
            "stubs/imports popped".into()
        }
        21 => {
            md.types.pop();
            "types popped".into()
        }
        22 => {
            if let Some(i) = some_index(&md.table_refs, r) {
                md.table_refs.remove(i);
            }
            "table_refs entry removed".into()
        }
        _ => {
            md.tags.push(odd_u32(r));
            "tag added".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_are_short() {
        assert_eq!(
            error_kind("invalid module: x at offset 3"),
            "invalid module: x"
        );
        assert_eq!(error_kind("unsupported: simd"), "unsupported: simd");
        assert_eq!(
            error_kind("artifact <artifact bytes> is corrupt or was modified: its SHA-256 is 00"),
            "is corrupt or was modified"
        );
    }

    #[test]
    fn wasm_mutants_differ() {
        let wasm = b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0".to_vec();
        let mut r = Rng::new(1);
        let n = (0..50)
            .filter(|_| mutate_wasm(&wasm, &mut r) != wasm)
            .count();
        assert!(n > 40);
    }
}
