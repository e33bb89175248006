//! The in-process linker: places compiled functions and read-only data in
//! an ELF64 x86-64 shared object, resolves the calls between functions and
//! writes the file that the runtime `dlopen`s.
//!
//! The object is the least the dynamic loader needs and nothing it would
//! act on beyond mapping it (see the runtime's `elf` check):
//!
//! ```text
//! file offset = virtual address
//! 0        ELF header, program headers, .hash, .dynsym, .dynstr, .rodata   R
//! page     .text                                                           R X
//! page     .dynamic                                                        R W
//!          .shstrtab, section headers (not loaded)
//! ```
//!
//! Every symbol is defined and every relocation is PC-relative between
//! functions of the object, so all are resolved here: the object has no
//! relocations, no needed libraries, no initialisers and no interpreter.
//! The loader writes only into `.dynamic`'s page (older glibc adjusts the
//! entries in place), which is why that page is writable and holds nothing
//! else. `DT_FLAGS` says `DF_SYMBOLIC | DF_BIND_NOW` as `-Bsymbolic -z now`
//! did, and a `PT_GNU_STACK` without `PF_X` keeps the stack non-executable.
//!
//! Until December 2026 the system `cc -shared` linked an ELF object written
//! by `cranelift-object`; doing it here saves a process, a temporary
//! directory and `ld` per compile (25–37 ms for a 2,500-function module)
//! and the dependency on a C toolchain at run time.

use thiserror::Error;

/// Why the shared object could not be written.
#[derive(Debug, Error)]
pub enum LinkError {
    /// A relocation's kind or target is not one the linker resolves.
    #[error("{0}")]
    Unsupported(String),
    /// A call's displacement does not fit its 32-bit field (code over 2 GiB).
    #[error("a call from `{from}` to `{to}` does not reach (code larger than 2 GiB?)")]
    OutOfRange {
        /// The calling function's symbol.
        from: String,
        /// The called function's symbol.
        to: String,
    },
    /// The object would be larger than the format's fields allow.
    #[error("the shared object would be too large")]
    TooLarge,
}

/// What a relocation refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The function with this id (its index in [`SharedObject::funcs`]).
    Func(u32),
    /// This offset in the function that holds the relocation.
    Local(u32),
}

/// A 32-bit PC-relative field to fill in: `target + addend - place`, where
/// `place` is the field's own address. It is the only kind compiled code
/// uses (calls and RIP-relative references).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PcRel32 {
    /// Offset of the field in the function's bytes.
    pub offset: u32,
    /// What it refers to.
    pub target: Target,
    /// Added to the target's address (typically -4 for a call).
    pub addend: i64,
}

/// A function's machine code and the fields to resolve in it.
pub(crate) struct FuncCode {
    /// The exported symbol.
    pub name: String,
    /// Its code.
    pub bytes: Vec<u8>,
    /// Required alignment of its first byte (a power of two).
    pub alignment: u64,
    /// Fields to resolve.
    pub relocs: Vec<PcRel32>,
}

/// A read-only data object exported under `name`.
pub(crate) struct DataObject {
    /// The exported symbol.
    pub name: String,
    /// Its contents.
    pub bytes: Vec<u8>,
    /// Required alignment (a power of two).
    pub alignment: u64,
}

/// Everything that goes into one shared object. Function ids are indices
/// into `funcs`.
pub(crate) struct SharedObject {
    /// Functions, placed in `.text` in this order.
    pub funcs: Vec<FuncCode>,
    /// Data objects, placed in `.rodata` in this order.
    pub data: Vec<DataObject>,
}

/// Page size the segments are aligned to (the largest x86-64 Linux uses for
/// ordinary mappings).
const PAGE: u64 = 4096;
const EHDR: u64 = 64;
const PHDR: u64 = 56;
const SHDR: u64 = 64;
const SYM: u64 = 24;
const DYN: u64 = 16;
/// Program headers: three `PT_LOAD`, `PT_DYNAMIC`, `PT_GNU_STACK`.
const PHNUM: u64 = 5;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_GNU_STACK: u32 = 0x6474_e551;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

const SHT_PROGBITS: u32 = 1;
const SHT_STRTAB: u32 = 3;
const SHT_HASH: u32 = 5;
const SHT_DYNAMIC: u32 = 6;
const SHT_DYNSYM: u32 = 11;
const SHF_WRITE: u64 = 1;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;

/// Section indices, in the order of the section header table.
const SEC_HASH: u16 = 1;
const SEC_DYNSYM: u16 = 2;
const SEC_DYNSTR: u16 = 3;
const SEC_RODATA: u16 = 4;
const SEC_TEXT: u16 = 5;
const SEC_DYNAMIC: u16 = 6;
const SEC_SHSTRTAB: u16 = 7;
const SHNUM: u16 = 8;

const STB_GLOBAL: u8 = 1;
const STT_OBJECT: u8 = 1;
const STT_FUNC: u8 = 2;

const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_STRSZ: u64 = 10;
const DT_SYMENT: u64 = 11;
const DT_FLAGS: u64 = 30;
const DT_FLAGS_1: u64 = 0x6fff_fffb;
const DF_SYMBOLIC: u64 = 0x2;
const DF_BIND_NOW: u64 = 0x8;
const DF_1_NOW: u64 = 0x1;

/// The section names, NUL-separated, and each name's offset in it.
const SHSTRTAB: &[u8] = b"\0.hash\0.dynsym\0.dynstr\0.rodata\0.text\0.dynamic\0.shstrtab\0";

/// Offset of `name` in [`SHSTRTAB`].
fn shstr(name: &str) -> u32 {
    let mut at = 0;
    for part in SHSTRTAB.split(|&b| b == 0) {
        if part == name.as_bytes() {
            return at;
        }
        at += part.len() as u32 + 1;
    }
    unreachable!("section name {name} is in SHSTRTAB")
}

/// `x` rounded up to a multiple of `align` (a power of two).
fn align_up(x: u64, align: u64) -> Result<u64, LinkError> {
    let mask = align.max(1) - 1;
    x.checked_add(mask)
        .map(|v| v & !mask)
        .ok_or(LinkError::TooLarge)
}

/// The System V ABI's symbol hash (`DT_HASH`).
fn elf_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

/// A growing little-endian byte buffer.
struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Zero-fill up to file offset `at` (which is not behind the end).
    fn pad_to(&mut self, at: u64) {
        debug_assert!(at >= self.0.len() as u64);
        self.0.resize(at as usize, 0);
    }
    fn pos(&self) -> u64 {
        self.0.len() as u64
    }
}

/// One program header.
struct Segment {
    kind: u32,
    flags: u32,
    at: u64,
    size: u64,
    align: u64,
}

/// One section header.
struct Section {
    name: &'static str,
    kind: u32,
    flags: u64,
    at: u64,
    size: u64,
    link: u32,
    info: u32,
    align: u64,
    entsize: u64,
}

impl SharedObject {
    /// Lay the object out, resolve every relocation and return the file.
    pub fn write(&self) -> Result<Vec<u8>, LinkError> {
        // Symbols: null, functions, data objects.
        let nsyms = 1 + self.funcs.len() + self.data.len();
        let nsyms32 = u32::try_from(nsyms).map_err(|_| LinkError::TooLarge)?;
        // Symbol `i + 1` is `names[i]`: functions, then data objects.
        let names: Vec<&str> = self
            .funcs
            .iter()
            .map(|f| f.name.as_str())
            .chain(self.data.iter().map(|d| d.name.as_str()))
            .collect();
        let mut dynstr = vec![0u8];
        let mut name_at = Vec::with_capacity(nsyms);
        for name in &names {
            if name.as_bytes().contains(&0) {
                return Err(LinkError::Unsupported(format!(
                    "symbol name {name:?} contains NUL"
                )));
            }
            name_at.push(u32::try_from(dynstr.len()).map_err(|_| LinkError::TooLarge)?);
            dynstr.extend_from_slice(name.as_bytes());
            dynstr.push(0);
        }
        // About one symbol per bucket: lookups walk chains of length ~1.
        let nbucket = nsyms32.max(1);

        // Layout of the first (read-only) segment.
        let hash_at = EHDR + PHNUM * PHDR;
        let hash_size = (2 + u64::from(nbucket) + nsyms as u64) * 4;
        let dynsym_at = align_up(hash_at + hash_size, 8)?;
        let dynstr_at = dynsym_at + nsyms as u64 * SYM;
        let dynstr_size = dynstr.len() as u64;
        let rodata_align = self.data.iter().map(|d| d.alignment).max().unwrap_or(1);
        let rodata_at = align_up(dynstr_at + dynstr_size, rodata_align)?;
        let mut data_at = Vec::with_capacity(self.data.len());
        let mut end = rodata_at;
        for d in &self.data {
            let at = align_up(end, d.alignment)?;
            data_at.push(at);
            end = at + d.bytes.len() as u64;
        }
        let rodata_size = end - rodata_at;

        // .text on its own pages.
        let text_at = align_up(end, PAGE)?;
        let text_align = self.funcs.iter().map(|f| f.alignment).max().unwrap_or(1);
        let mut func_at = Vec::with_capacity(self.funcs.len());
        let mut end = text_at;
        for f in &self.funcs {
            let at = align_up(end, f.alignment)?;
            func_at.push(at);
            end = at
                .checked_add(f.bytes.len() as u64)
                .ok_or(LinkError::TooLarge)?;
        }
        // A segment of at least one byte (an empty mapping is an error for
        // some loaders): an int3.
        let text_size = (end - text_at).max(1);

        // .dynamic on its own writable page.
        let dynamic: [(u64, u64); 8] = [
            (DT_HASH, hash_at),
            (DT_STRTAB, dynstr_at),
            (DT_SYMTAB, dynsym_at),
            (DT_STRSZ, dynstr_size),
            (DT_SYMENT, SYM),
            (DT_FLAGS, DF_SYMBOLIC | DF_BIND_NOW),
            (DT_FLAGS_1, DF_1_NOW),
            (DT_NULL, 0),
        ];
        let dynamic_at = align_up(text_at + text_size, PAGE)?;
        let dynamic_size = dynamic.len() as u64 * DYN;
        let shstrtab_at = dynamic_at + dynamic_size;
        let shdr_at = align_up(shstrtab_at + SHSTRTAB.len() as u64, 8)?;
        let file_size = shdr_at + u64::from(SHNUM) * SHDR;
        let file_len = usize::try_from(file_size).map_err(|_| LinkError::TooLarge)?;

        let mut out = Out(Vec::with_capacity(file_len));

        // ELF header.
        out.0.extend_from_slice(b"\x7fELF");
        out.u8(2); // ELFCLASS64
        out.u8(1); // ELFDATA2LSB
        out.u8(1); // EV_CURRENT
        out.u8(0); // ELFOSABI_SYSV
        out.pad_to(16);
        out.u16(3); // ET_DYN
        out.u16(62); // EM_X86_64
        out.u32(1); // EV_CURRENT
        out.u64(0); // e_entry
        out.u64(EHDR); // e_phoff
        out.u64(shdr_at); // e_shoff
        out.u32(0); // e_flags
        out.u16(EHDR as u16);
        out.u16(PHDR as u16);
        out.u16(PHNUM as u16);
        out.u16(SHDR as u16);
        out.u16(SHNUM);
        out.u16(SEC_SHSTRTAB);

        // Program headers.
        let segments = [
            Segment {
                kind: PT_LOAD,
                flags: PF_R,
                at: 0,
                size: rodata_at + rodata_size,
                align: PAGE,
            },
            Segment {
                kind: PT_LOAD,
                flags: PF_R | PF_X,
                at: text_at,
                size: text_size,
                align: PAGE,
            },
            Segment {
                kind: PT_LOAD,
                flags: PF_R | PF_W,
                at: dynamic_at,
                size: dynamic_size,
                align: PAGE,
            },
            Segment {
                kind: PT_DYNAMIC,
                flags: PF_R | PF_W,
                at: dynamic_at,
                size: dynamic_size,
                align: 8,
            },
            Segment {
                kind: PT_GNU_STACK,
                flags: PF_R | PF_W,
                at: 0,
                size: 0,
                align: 16,
            },
        ];
        for s in &segments {
            out.u32(s.kind);
            out.u32(s.flags);
            out.u64(s.at); // p_offset
            out.u64(s.at); // p_vaddr
            out.u64(s.at); // p_paddr
            out.u64(s.size); // p_filesz
            out.u64(s.size); // p_memsz
            out.u64(s.align);
        }

        // .hash: nbucket, nchain, buckets, chains. Symbol 0 ends a chain.
        let mut buckets = vec![0u32; nbucket as usize];
        let mut chains = vec![0u32; nsyms];
        for (i, name) in names.iter().enumerate() {
            let sym = i + 1;
            let b = (elf_hash(name.as_bytes()) % nbucket) as usize;
            chains[sym] = buckets[b];
            buckets[b] = sym as u32;
        }
        out.pad_to(hash_at);
        out.u32(nbucket);
        out.u32(nsyms32);
        for v in buckets.iter().chain(&chains) {
            out.u32(*v);
        }

        // .dynsym.
        out.pad_to(dynsym_at);
        out.0.extend_from_slice(&[0u8; SYM as usize]);
        let func_syms = self
            .funcs
            .iter()
            .zip(&func_at)
            .map(|(f, &at)| (STT_FUNC, SEC_TEXT, at, f.bytes.len() as u64));
        let data_syms = self
            .data
            .iter()
            .zip(&data_at)
            .map(|(d, &at)| (STT_OBJECT, SEC_RODATA, at, d.bytes.len() as u64));
        for ((kind, section, at, size), &name) in func_syms.chain(data_syms).zip(&name_at) {
            out.u32(name);
            out.u8((STB_GLOBAL << 4) | kind);
            out.u8(0); // STV_DEFAULT
            out.u16(section);
            out.u64(at);
            out.u64(size);
        }

        // .dynstr and .rodata.
        out.pad_to(dynstr_at);
        out.0.extend_from_slice(&dynstr);
        for (d, &at) in self.data.iter().zip(&data_at) {
            out.pad_to(at);
            out.0.extend_from_slice(&d.bytes);
        }

        // .text, each function's relocations resolved as it is copied.
        out.pad_to(text_at);
        for (i, (f, &at)) in self.funcs.iter().zip(&func_at).enumerate() {
            out.pad_to(at);
            let start = out.0.len();
            out.0.extend_from_slice(&f.bytes);
            for r in &f.relocs {
                let target = match r.target {
                    Target::Func(id) => *func_at.get(id as usize).ok_or_else(|| {
                        LinkError::Unsupported(format!(
                            "`{}` refers to function id {id}, which does not exist",
                            f.name
                        ))
                    })?,
                    Target::Local(offset) => at + u64::from(offset),
                };
                let place = at + u64::from(r.offset);
                let value = i64::try_from(target)
                    .ok()
                    .and_then(|t| t.checked_add(r.addend))
                    .and_then(|t| t.checked_sub(place as i64))
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(|| LinkError::OutOfRange {
                        from: f.name.clone(),
                        to: match r.target {
                            Target::Func(id) => self.funcs[id as usize].name.clone(),
                            Target::Local(_) => f.name.clone(),
                        },
                    })?;
                let field = start + r.offset as usize;
                out.0
                    .get_mut(field..field + 4)
                    .ok_or_else(|| {
                        LinkError::Unsupported(format!(
                            "a relocation in `{}` (function {i}) lies outside its code",
                            f.name
                        ))
                    })?
                    .copy_from_slice(&value.to_le_bytes());
            }
        }
        if self.funcs.iter().all(|f| f.bytes.is_empty()) {
            out.u8(0xcc);
        }

        // .dynamic.
        out.pad_to(dynamic_at);
        for (tag, value) in dynamic {
            out.u64(tag);
            out.u64(value);
        }

        // .shstrtab and the section headers.
        out.0.extend_from_slice(SHSTRTAB);
        out.pad_to(shdr_at);
        out.0.extend_from_slice(&[0u8; SHDR as usize]);
        let sections = [
            Section {
                name: ".hash",
                kind: SHT_HASH,
                flags: SHF_ALLOC,
                at: hash_at,
                size: hash_size,
                link: u32::from(SEC_DYNSYM),
                info: 0,
                align: 8,
                entsize: 4,
            },
            Section {
                name: ".dynsym",
                kind: SHT_DYNSYM,
                flags: SHF_ALLOC,
                at: dynsym_at,
                size: nsyms as u64 * SYM,
                link: u32::from(SEC_DYNSTR),
                // Index of the first non-local symbol.
                info: 1,
                align: 8,
                entsize: SYM,
            },
            Section {
                name: ".dynstr",
                kind: SHT_STRTAB,
                flags: SHF_ALLOC,
                at: dynstr_at,
                size: dynstr_size,
                link: 0,
                info: 0,
                align: 1,
                entsize: 0,
            },
            Section {
                name: ".rodata",
                kind: SHT_PROGBITS,
                flags: SHF_ALLOC,
                at: rodata_at,
                size: rodata_size,
                link: 0,
                info: 0,
                align: rodata_align,
                entsize: 0,
            },
            Section {
                name: ".text",
                kind: SHT_PROGBITS,
                flags: SHF_ALLOC | SHF_EXECINSTR,
                at: text_at,
                size: text_size,
                link: 0,
                info: 0,
                align: text_align,
                entsize: 0,
            },
            Section {
                name: ".dynamic",
                kind: SHT_DYNAMIC,
                flags: SHF_ALLOC | SHF_WRITE,
                at: dynamic_at,
                size: dynamic_size,
                link: u32::from(SEC_DYNSTR),
                info: 0,
                align: 8,
                entsize: DYN,
            },
            Section {
                name: ".shstrtab",
                kind: SHT_STRTAB,
                flags: 0,
                at: shstrtab_at,
                size: SHSTRTAB.len() as u64,
                link: 0,
                info: 0,
                align: 1,
                entsize: 0,
            },
        ];
        debug_assert_eq!(sections.len() + 1, usize::from(SHNUM));
        debug_assert_eq!(sections[usize::from(SEC_HASH) - 1].name, ".hash");
        debug_assert_eq!(sections[usize::from(SEC_TEXT) - 1].name, ".text");
        debug_assert_eq!(sections[usize::from(SEC_RODATA) - 1].name, ".rodata");
        debug_assert_eq!(sections[usize::from(SEC_DYNAMIC) - 1].name, ".dynamic");
        for s in &sections {
            out.u32(shstr(s.name));
            out.u32(s.kind);
            out.u64(s.flags);
            // Loaded sections sit at the same address as their offset.
            out.u64(if s.flags & SHF_ALLOC != 0 { s.at } else { 0 });
            out.u64(s.at);
            out.u64(s.size);
            out.u32(s.link);
            out.u32(s.info);
            out.u64(s.align);
            out.u64(s.entsize);
        }
        debug_assert_eq!(out.pos(), file_size);
        Ok(out.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sysv_hash_matches_the_abi_examples() {
        // Values from the System V ABI's reference implementation.
        assert_eq!(elf_hash(b""), 0);
        assert_eq!(elf_hash(b"printf"), 0x077905a6);
        assert_eq!(elf_hash(b"exit"), 0x0006cf04);
        assert_eq!(elf_hash(b"syscall"), 0x0b09985c);
    }

    #[test]
    fn section_names_are_found() {
        assert_eq!(shstr(".hash"), 1);
        assert_eq!(
            shstr(".shstrtab") as usize + ".shstrtab".len() + 1,
            SHSTRTAB.len()
        );
    }

    fn func(name: &str, bytes: Vec<u8>, relocs: Vec<PcRel32>) -> FuncCode {
        FuncCode {
            name: name.into(),
            bytes,
            alignment: 16,
            relocs,
        }
    }

    #[test]
    fn calls_are_resolved_pc_relative() {
        // f: call g; ret     g: ret
        let so = SharedObject {
            funcs: vec![
                func(
                    "f",
                    vec![0xe8, 0, 0, 0, 0, 0xc3],
                    vec![PcRel32 {
                        offset: 1,
                        target: Target::Func(1),
                        addend: -4,
                    }],
                ),
                func("g", vec![0xc3], vec![]),
            ],
            data: vec![],
        };
        let file = so.write().unwrap();
        // .text starts on the first page after the headers; f at its start,
        // g 16 bytes later: the call's displacement is 16 - 5.
        let text = PAGE as usize;
        assert_eq!(file[text], 0xe8);
        assert_eq!(
            i32::from_le_bytes(file[text + 1..text + 5].try_into().unwrap()),
            11
        );
        assert_eq!(file[text + 16], 0xc3);
    }

    fn u32_at(f: &[u8], at: u64) -> u32 {
        u32::from_le_bytes(f[at as usize..at as usize + 4].try_into().unwrap())
    }

    fn u64_at(f: &[u8], at: u64) -> u64 {
        u64::from_le_bytes(f[at as usize..at as usize + 8].try_into().unwrap())
    }

    #[test]
    fn every_symbol_is_found_through_the_hash_table() {
        // Look every name up the way the loader does: hash, bucket, chain,
        // compare the name; then check the symbol's address and size.
        let funcs: Vec<FuncCode> = (0..5000)
            .map(|i| func(&format!("myriad_func_{i}"), vec![0x90; i % 40], vec![]))
            .collect();
        let data = vec![DataObject {
            name: "blob".into(),
            bytes: vec![7; 100],
            alignment: 16,
        }];
        let so = SharedObject { funcs, data };
        let f = so.write().unwrap();
        let dynamic = u64_at(&f, EHDR + 3 * PHDR + 8);
        let tag = |t: u64| {
            (0..)
                .map(|i| dynamic + i * DYN)
                .find(|&at| u64_at(&f, at) == t || u64_at(&f, at) == DT_NULL)
                .map(|at| u64_at(&f, at + 8))
                .unwrap()
        };
        let (hash, symtab, strtab) = (tag(DT_HASH), tag(DT_SYMTAB), tag(DT_STRTAB));
        let nbucket = u32_at(&f, hash);
        let lookup = |name: &str| -> Option<(u64, u64, u16)> {
            let mut sym = u32_at(
                &f,
                hash + 8 + 4 * u64::from(elf_hash(name.as_bytes()) % nbucket),
            );
            while sym != 0 {
                let at = symtab + u64::from(sym) * SYM;
                let start = (strtab + u64::from(u32_at(&f, at))) as usize;
                let end = start + f[start..].iter().position(|&b| b == 0).unwrap();
                if &f[start..end] == name.as_bytes() {
                    let shndx = u16::from_le_bytes([f[at as usize + 6], f[at as usize + 7]]);
                    return Some((u64_at(&f, at + 8), u64_at(&f, at + 16), shndx));
                }
                sym = u32_at(&f, hash + 8 + 4 * (u64::from(nbucket) + u64::from(sym)));
            }
            None
        };
        let mut last = 0;
        for (i, fc) in so.funcs.iter().enumerate() {
            let (at, size, shndx) = lookup(&fc.name).unwrap();
            assert_eq!((size, shndx), ((i % 40) as u64, SEC_TEXT));
            assert!(
                at >= PAGE && at % 16 == 0 && at >= last,
                "{} at {at:#x}",
                fc.name
            );
            assert!(f[at as usize..(at + size) as usize]
                .iter()
                .all(|&b| b == 0x90));
            last = at + size;
        }
        let (at, size, shndx) = lookup("blob").unwrap();
        assert_eq!((size, shndx), (100, SEC_RODATA));
        assert!(f[at as usize..at as usize + 100].iter().all(|&b| b == 7));
        assert_eq!(lookup("myriad_func_5000"), None);
    }

    /// A one-function object whose code `bytes` has one call field at 1.
    fn one_call(bytes: Vec<u8>, target: Target, addend: i64) -> SharedObject {
        let reloc = PcRel32 {
            offset: 1,
            target,
            addend,
        };
        SharedObject {
            funcs: vec![func("f", bytes, vec![reloc])],
            data: vec![],
        }
    }

    #[test]
    fn bad_relocations_are_errors() {
        // The field runs past the code.
        let so = one_call(vec![0xe8, 0, 0], Target::Func(0), -4);
        assert!(matches!(so.write(), Err(LinkError::Unsupported(_))));
        // No function 7.
        let so = one_call(vec![0xe8, 0, 0, 0, 0], Target::Func(7), -4);
        assert!(matches!(so.write(), Err(LinkError::Unsupported(_))));
        // A displacement past 2 GiB.
        let far = i64::from(i32::MAX) + 10;
        let so = one_call(vec![0xe8, 0, 0, 0, 0], Target::Local(0), far);
        assert!(matches!(so.write(), Err(LinkError::OutOfRange { .. })));
    }
}
