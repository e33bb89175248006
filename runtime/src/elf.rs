//! What `dlopen` would do with an artifact file, checked before it does it.
//!
//! The dynamic loader reads an object's ELF header, its program headers
//! and its dynamic section; it maps the `PT_LOAD` segments, loads the
//! libraries named by `DT_NEEDED`, applies relocations (an `IRELATIVE` one
//! calls code of the object) and runs the initialisers (`DT_INIT`,
//! `DT_INIT_ARRAY`, `DT_PREINIT_ARRAY`). Myriad's artifacts need none of
//! that beyond the mapping: the code generator's linker resolves every
//! call inside the object and writes none of those (see
//! `myriad_codegen`'s `shared_object` module), so they have no
//! relocations, no needed libraries and no initialisers. [`check`] refuses
//! a file that has any of them, an interpreter or TLS, or whose `PT_LOAD`
//! segments or section headers reach past its end (a truncated file, whose
//! mapping would fault with `SIGBUS` when touched). So `dlopen` of a file
//! that passed runs none of its code, whatever the rest of the bytes say.
//!
//! The check reads a few hundred bytes (header, program headers, dynamic
//! section) through a reader, so it costs the same for a file of any size.

/// `PT_LOAD`.
const PT_LOAD: u32 = 1;
/// `PT_DYNAMIC`.
const PT_DYNAMIC: u32 = 2;
/// `PT_INTERP`.
const PT_INTERP: u32 = 3;
/// `PT_TLS`.
const PT_TLS: u32 = 7;
/// Largest dynamic section read (artifacts have about ten entries).
const MAX_DYNAMIC: u64 = 64 * 1024;
/// Most program headers accepted (artifacts have eight).
const MAX_PHNUM: u64 = 64;

/// Dynamic tags that make the loader run or load code, or write through
/// relocations, with their names for the error.
const REFUSED_TAGS: [(i64, &str); 15] = [
    (1, "DT_NEEDED"),
    (7, "DT_RELA"),
    (12, "DT_INIT"),
    (13, "DT_FINI"),
    (17, "DT_REL"),
    (22, "DT_TEXTREL"),
    (23, "DT_JMPREL"),
    (25, "DT_INIT_ARRAY"),
    (26, "DT_FINI_ARRAY"),
    (32, "DT_PREINIT_ARRAY"),
    (36, "DT_RELR"),
    (0x6fff_fefb, "DT_DEPAUDIT"),
    (0x6fff_fefc, "DT_AUDIT"),
    (0x7fff_fffd, "DT_AUXILIARY"),
    (0x7fff_ffff, "DT_FILTER"),
];

/// Where [`check`] reads from: `read(offset, buf)` fills `buf` with the
/// bytes at `offset`, or returns `false` if the file is shorter.
pub(crate) type ReadAt<'a> = &'a mut dyn FnMut(u64, &mut [u8]) -> bool;

/// A reader over bytes in memory.
pub(crate) fn slice_reader(bytes: &[u8]) -> impl FnMut(u64, &mut [u8]) -> bool + '_ {
    move |offset, buf| {
        let Ok(start) = usize::try_from(offset) else {
            return false;
        };
        match start
            .checked_add(buf.len())
            .and_then(|end| bytes.get(start..end))
        {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Check the ELF structure of a file of `len` bytes read through `read`
/// (see the module docs). The error says what is wrong.
pub(crate) fn check(read: ReadAt<'_>, len: u64) -> Result<(), String> {
    let mut eh = [0u8; 64];
    if !read(0, &mut eh) {
        return Err("shorter than an ELF header".into());
    }
    if eh[..4] != *b"\x7fELF" || eh[4] != 2 || eh[5] != 1 || eh[6] != 1 {
        return Err("not a little-endian ELF64 file".into());
    }
    if u16_at(&eh, 16) != 3 || u16_at(&eh, 18) != 62 {
        return Err("not an x86-64 shared object".into());
    }
    let (phoff, phentsize, phnum) = (u64_at(&eh, 32), u16_at(&eh, 54), u16_at(&eh, 56));
    let (shoff, shentsize, shnum) = (u64_at(&eh, 40), u16_at(&eh, 58), u16_at(&eh, 60));
    let within = |offset: u64, size: u64| offset.checked_add(size).is_some_and(|end| end <= len);
    if phentsize != 56 || phnum == 0 || phnum > MAX_PHNUM || !within(phoff, phnum * 56) {
        return Err("bad program header table".into());
    }
    if shnum != 0 && !within(shoff, shnum * shentsize) {
        return Err("section headers past the end of the file (truncated?)".into());
    }
    let mut ph = vec![0u8; (phnum * 56) as usize];
    if !read(phoff, &mut ph) {
        return Err("program headers unreadable".into());
    }
    let mut dynamic = None;
    for p in ph.chunks_exact(56) {
        let (kind, offset, filesz) = (u32_at(p, 0), u64_at(p, 8), u64_at(p, 32));
        match kind {
            PT_LOAD if !within(offset, filesz) => {
                return Err("a loaded segment reaches past the end of the file (truncated?)".into())
            }
            PT_INTERP => return Err("it names an interpreter".into()),
            PT_TLS => return Err("it has thread-local storage".into()),
            PT_DYNAMIC if dynamic.is_some() => return Err("two dynamic segments".into()),
            PT_DYNAMIC => dynamic = Some((offset, filesz)),
            _ => {}
        }
    }
    let Some((offset, size)) = dynamic else {
        return Err("no dynamic segment".into());
    };
    if size > MAX_DYNAMIC || !within(offset, size) {
        return Err("bad dynamic segment".into());
    }
    let mut dy = vec![0u8; size as usize];
    if !read(offset, &mut dy) {
        return Err("dynamic segment unreadable".into());
    }
    for entry in dy.chunks_exact(16) {
        let tag = u64_at(entry, 0) as i64;
        if tag == 0 {
            return Ok(());
        }
        if let Some((_, name)) = REFUSED_TAGS.iter().find(|(t, _)| *t == tag) {
            return Err(format!(
                "its dynamic section has {name}: loading it would load, run or relocate code"
            ));
        }
    }
    Err("dynamic section without DT_NULL".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 x86-64 shared object: header, two program headers
    /// (a load segment covering the file and a dynamic segment) and a
    /// dynamic section of `tags` then `DT_NULL`.
    fn elf(tags: &[i64]) -> Vec<u8> {
        let dyn_at = 64 + 2 * 56;
        let dyn_len = (tags.len() + 1) * 16;
        let len = (dyn_at + dyn_len) as u64;
        let mut f = vec![0u8; len as usize];
        f[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        f[16..18].copy_from_slice(&3u16.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        let ph = |f: &mut Vec<u8>, i: usize, kind: u32, off: u64, size: u64| {
            let p = 64 + i * 56;
            f[p..p + 4].copy_from_slice(&kind.to_le_bytes());
            f[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
            f[p + 32..p + 40].copy_from_slice(&size.to_le_bytes());
        };
        ph(&mut f, 0, PT_LOAD, 0, len);
        ph(&mut f, 1, PT_DYNAMIC, dyn_at as u64, dyn_len as u64);
        for (i, t) in tags.iter().enumerate() {
            let at = dyn_at + i * 16;
            f[at..at + 8].copy_from_slice(&t.to_le_bytes());
        }
        f
    }

    fn check_bytes(f: &[u8]) -> Result<(), String> {
        check(&mut slice_reader(f), f.len() as u64)
    }

    #[test]
    fn a_plain_object_passes() {
        // DT_GNU_HASH, DT_STRTAB, DT_SYMTAB, DT_FLAGS: what artifacts have.
        assert_eq!(check_bytes(&elf(&[0x6fff_fef5, 5, 6, 30])), Ok(()));
    }

    #[test]
    fn initialisers_relocations_and_needed_libraries_are_refused() {
        for (tag, name) in REFUSED_TAGS {
            let e = check_bytes(&elf(&[5, tag])).unwrap_err();
            assert!(e.contains(name), "{e}");
        }
    }

    #[test]
    fn truncation_and_other_damage_are_refused() {
        let f = elf(&[5]);
        assert!(check_bytes(&f[..f.len() - 1]).is_err());
        assert!(check_bytes(&f[..40]).is_err());
        let mut g = f.clone();
        g[18] = 3; // EM_386
        assert!(check_bytes(&g).is_err());
        let mut g = f.clone();
        g[64..68].copy_from_slice(&PT_INTERP.to_le_bytes());
        assert!(check_bytes(&g).is_err());
        // A dynamic section that never ends.
        let mut g = f.clone();
        let last = g.len() - 16;
        g[last..last + 8].copy_from_slice(&5i64.to_le_bytes());
        assert!(check_bytes(&g).is_err());
    }
}
