//! The metadata's binary encoding: a self-checking blob
//! `[u64 checksum][payload]`, little endian, length-prefixed lists.

use crate::artifact::hash64;
use crate::decls::*;
use crate::metadata::*;
use crate::types::*;
use crate::ABI_VERSION;

impl Metadata {
    /// Serialize to a self-checking blob: `[u64 checksum][payload]`, where
    /// the payload starts with the ABI version.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(256));
        w.u32(self.abi_version);
        w.u64(self.fingerprint);
        w.bytes(self.target.as_bytes());
        w.u32(self.cpu_features.len() as u32);
        for f in &self.cpu_features {
            w.bytes(f.as_bytes());
        }
        w.0.extend_from_slice(&self.source_key);
        w.u64(self.guard_bytes);
        w.u64(self.heap_reservation);
        w.u64(self.requested_guard_bytes);
        w.u64(self.requested_heap_reservation);
        w.u32(self.types.len() as u32);
        for t in &self.types {
            w.u32(t.params.len() as u32);
            for p in &t.params {
                w.u8(*p as u8);
            }
            w.u32(t.results.len() as u32);
            for r in &t.results {
                w.u8(*r as u8);
            }
        }
        w.u32(self.imports.len() as u32);
        for i in &self.imports {
            w.bytes(i.module.as_bytes());
            w.bytes(i.name.as_bytes());
            match &i.kind {
                ImportKind::Func(t) => {
                    w.u8(0);
                    w.u32(*t);
                }
                ImportKind::Global { ty, mutable } => {
                    w.u8(1);
                    w.u8(*ty as u8);
                    w.u8(*mutable as u8);
                }
                ImportKind::Memory(m) => {
                    w.u8(2);
                    w.memory(m);
                }
                ImportKind::Table(t) => {
                    w.u8(3);
                    w.table(t);
                }
                ImportKind::Tag(t) => {
                    w.u8(4);
                    w.u32(*t);
                }
            }
        }
        w.u32(self.func_types.len() as u32);
        for t in &self.func_types {
            w.u32(*t);
        }
        match &self.memory {
            None => w.u8(0),
            Some(m) => {
                w.u8(1);
                w.memory(m);
            }
        }
        w.u32(self.globals.len() as u32);
        for g in &self.globals {
            w.u8(g.ty as u8);
            w.u8(g.mutable as u8);
            w.expr(&g.init);
        }
        w.u32(self.data.len() as u32);
        for d in &self.data {
            w.u8(d.passive as u8);
            w.expr(&d.offset);
            w.bytes(&d.bytes);
        }
        w.u32(self.tables.len() as u32);
        for t in &self.tables {
            w.table(t);
        }
        w.u32(self.elems.len() as u32);
        for e in &self.elems {
            match &e.mode {
                ElemMode::Passive => w.u8(0),
                ElemMode::Active { table, offset } => {
                    w.u8(1);
                    w.u32(*table);
                    w.expr(offset);
                }
                ElemMode::Declared => w.u8(2),
            }
            w.u32(e.items.len() as u32);
            for i in &e.items {
                match i {
                    ElemItem::Null => w.u8(0),
                    ElemItem::Func(f) => {
                        w.u8(1);
                        w.u32(*f);
                    }
                    ElemItem::Global(g) => {
                        w.u8(2);
                        w.u32(*g);
                    }
                }
            }
        }
        w.u32(self.tags.len() as u32);
        for t in &self.tags {
            w.u32(*t);
        }
        w.u8(self.func_refs as u8);
        w.u32(self.exports.len() as u32);
        for e in &self.exports {
            w.bytes(e.name.as_bytes());
            w.u8(match e.kind {
                ExportKind::Func => 0,
                ExportKind::Table => 1,
                ExportKind::Memory => 2,
                ExportKind::Global => 3,
                ExportKind::Tag => 4,
            });
            w.u32(e.index);
        }
        match self.start {
            None => w.u8(0),
            Some(s) => {
                w.u8(1);
                w.u32(s);
            }
        }
        w.u32(self.traps.len() as u32);
        for t in &self.traps {
            w.u32(t.func_index);
            w.u32(t.offset);
            w.u8(t.kind as u8);
        }
        w.u32(self.global_refs.len() as u32);
        for g in &self.global_refs {
            match g {
                None => w.u8(0x7f),
                Some(r) => {
                    let (tag, index) = r.code();
                    w.u8(tag);
                    w.u32(index);
                }
            }
        }
        w.u32(self.table_refs.len() as u32);
        for t in &self.table_refs {
            let (tag, index) = t.code();
            w.u8(tag);
            w.u32(index);
        }
        for list in [&self.wrappers, &self.stubs] {
            w.u32(list.len() as u32);
            for h in list {
                w.u32(h.frame_bytes);
                w.u32(h.traps.len() as u32);
                for (offset, kind) in &h.traps {
                    w.u32(*offset);
                    w.u8(*kind as u8);
                }
            }
        }
        let payload = w.0;
        let mut out = Vec::with_capacity(payload.len() + 8);
        out.extend_from_slice(&hash64(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Parse and check a blob written by [`Metadata::encode`]. Refuses a
    /// blob whose checksum fails, whose ABI version differs, or whose
    /// indices are out of range.
    pub fn decode(blob: &[u8]) -> Result<Metadata, MetadataError> {
        if blob.len() < 12 {
            return Err(MetadataError::Truncated);
        }
        let (sum, payload) = blob.split_at(8);
        let sum = u64::from_le_bytes(sum.try_into().map_err(|_| MetadataError::Truncated)?);
        if sum != hash64(payload) {
            return Err(MetadataError::Checksum);
        }
        let mut r = Reader(payload);
        let abi_version = r.u32()?;
        if abi_version != ABI_VERSION {
            return Err(MetadataError::AbiVersion {
                found: abi_version,
                expected: ABI_VERSION,
            });
        }
        let fingerprint = r.u64()?;
        let target = r.string()?;
        let mut cpu_features = Vec::new();
        for _ in 0..r.count()? {
            cpu_features.push(r.string()?);
        }
        let mut source_key = [0u8; 32];
        source_key.copy_from_slice(r.take(32)?);
        let guard_bytes = r.u64()?;
        let heap_reservation = r.u64()?;
        let requested_guard_bytes = r.u64()?;
        let requested_heap_reservation = r.u64()?;
        let mut types = Vec::new();
        for _ in 0..r.count()? {
            let mut params = Vec::new();
            for _ in 0..r.count()? {
                params.push(r.val_type()?);
            }
            let mut results = Vec::new();
            for _ in 0..r.count()? {
                results.push(r.val_type()?);
            }
            types.push(FuncType { params, results });
        }
        let type_index = |t: u32| -> Result<u32, MetadataError> {
            if (t as usize) < types.len() {
                Ok(t)
            } else {
                Err(MetadataError::Malformed("type index out of range"))
            }
        };
        let mut imports = Vec::new();
        for _ in 0..r.count()? {
            let module = r.string()?;
            let name = r.string()?;
            let kind = match r.u8()? {
                0 => ImportKind::Func(type_index(r.u32()?)?),
                1 => ImportKind::Global {
                    ty: r.val_type()?,
                    mutable: r.flag()?,
                },
                2 => ImportKind::Memory(r.memory()?),
                3 => ImportKind::Table(r.table()?),
                4 => ImportKind::Tag(type_index(r.u32()?)?),
                _ => return Err(MetadataError::Malformed("import kind")),
            };
            imports.push(Import { module, name, kind });
        }
        let mut func_types = Vec::new();
        for _ in 0..r.count()? {
            func_types.push(type_index(r.u32()?)?);
        }
        let memory = match r.u8()? {
            0 => None,
            1 => Some(r.memory()?),
            _ => return Err(MetadataError::Malformed("memory flag")),
        };
        let mut globals = Vec::new();
        for _ in 0..r.count()? {
            let ty = r.val_type()?;
            let mutable = r.flag()?;
            let init = r.expr()?;
            globals.push(GlobalDecl { ty, mutable, init });
        }
        let mut data = Vec::new();
        for _ in 0..r.count()? {
            let passive = r.flag()?;
            let offset = r.expr()?;
            let bytes = r.bytes()?.to_vec();
            data.push(DataSegment {
                passive,
                offset,
                bytes,
            });
        }
        let mut tables = Vec::new();
        for _ in 0..r.count()? {
            tables.push(r.table()?);
        }
        let mut elems = Vec::new();
        for _ in 0..r.count()? {
            let mode = match r.u8()? {
                0 => ElemMode::Passive,
                1 => ElemMode::Active {
                    table: r.u32()?,
                    offset: r.expr()?,
                },
                2 => ElemMode::Declared,
                _ => return Err(MetadataError::Malformed("element mode")),
            };
            let mut items = Vec::new();
            for _ in 0..r.count()? {
                items.push(match r.u8()? {
                    0 => ElemItem::Null,
                    1 => ElemItem::Func(r.u32()?),
                    2 => ElemItem::Global(r.u32()?),
                    _ => return Err(MetadataError::Malformed("element item")),
                });
            }
            elems.push(ElemSegment { mode, items });
        }
        let mut tags = Vec::new();
        for _ in 0..r.count()? {
            tags.push(type_index(r.u32()?)?);
        }
        let func_refs = r.flag()?;
        let mut exports = Vec::new();
        for _ in 0..r.count()? {
            let name = r.string()?;
            let kind = match r.u8()? {
                0 => ExportKind::Func,
                1 => ExportKind::Table,
                2 => ExportKind::Memory,
                3 => ExportKind::Global,
                4 => ExportKind::Tag,
                _ => return Err(MetadataError::Malformed("export kind")),
            };
            let index = r.u32()?;
            exports.push(Export { name, kind, index });
        }
        let start = match r.u8()? {
            0 => None,
            1 => Some(r.u32()?),
            _ => return Err(MetadataError::Malformed("start flag")),
        };
        let mut traps = Vec::new();
        for _ in 0..r.count()? {
            let func_index = r.u32()?;
            let offset = r.u32()?;
            let kind = TrapKind::from_code(r.u8()?).ok_or(MetadataError::Malformed("trap kind"))?;
            traps.push(TrapSite {
                func_index,
                offset,
                kind,
            });
        }
        let mut global_refs = Vec::new();
        for _ in 0..r.count()? {
            global_refs.push(match r.u8()? {
                0x7f => None,
                tag => Some(
                    RefPrecise::from_code(tag, r.u32()?)
                        .ok_or(MetadataError::Malformed("global reference type"))?,
                ),
            });
        }
        let mut table_refs = Vec::new();
        for _ in 0..r.count()? {
            let tag = r.u8()?;
            table_refs.push(
                RefPrecise::from_code(tag, r.u32()?)
                    .ok_or(MetadataError::Malformed("table reference type"))?,
            );
        }
        let mut helpers = [Vec::new(), Vec::new()];
        for list in &mut helpers {
            for _ in 0..r.count()? {
                let frame_bytes = r.u32()?;
                let mut traps = Vec::new();
                for _ in 0..r.count()? {
                    let offset = r.u32()?;
                    let kind = TrapKind::from_code(r.u8()?)
                        .ok_or(MetadataError::Malformed("helper trap kind"))?;
                    traps.push((offset, kind));
                }
                list.push(HelperCode { frame_bytes, traps });
            }
        }
        let [wrappers, stubs] = helpers;
        if !r.0.is_empty() {
            return Err(MetadataError::Malformed("trailing bytes"));
        }
        let m = Metadata {
            abi_version,
            fingerprint,
            target,
            cpu_features,
            source_key,
            guard_bytes,
            heap_reservation,
            requested_guard_bytes,
            requested_heap_reservation,
            types,
            imports,
            func_types,
            memory,
            globals,
            data,
            tables,
            elems,
            tags,
            global_refs,
            table_refs,
            func_refs,
            exports,
            start,
            traps,
            wrappers,
            stubs,
        };
        m.check_indices()?;
        Ok(m)
    }

    /// Check that every index the metadata holds is in range, so the
    /// runtime can index without further checks.
    fn check_indices(&self) -> Result<(), MetadataError> {
        let funcs = self.num_imported_funcs() + self.func_types.len();
        let globals = self.num_imported_globals() + self.globals.len();
        let tables = self.imported_tables().count() + self.tables.len();
        let tags = self.num_imported_tags() + self.tags.len();
        let has_memory = self.memory.is_some() || self.imported_memory().is_some();
        if self.memory.is_some() && self.imported_memory().is_some() {
            return Err(MetadataError::Malformed("more than one memory"));
        }
        let expr_ok = |e: &ConstExpr| {
            e.0.iter().all(|op| match op {
                ConstOp::RefFunc(f) => (*f as usize) < funcs,
                ConstOp::GlobalGet(g) => (*g as usize) < globals,
                _ => true,
            })
        };
        let bad = |what| Err(MetadataError::Malformed(what));
        // Precise reference types: one per global and table, a reference
        // exactly for reference-typed ones, concrete types in range.
        let ref_ok = |r: &RefPrecise, ty: ValType| match r.heap {
            RefHeap::Func | RefHeap::NoFunc => ty == ValType::FuncRef,
            RefHeap::Extern | RefHeap::NoExtern => ty == ValType::ExternRef,
            RefHeap::Concrete(t) => ty == ValType::FuncRef && (t as usize) < self.types.len(),
        };
        let global_types = self
            .imported_globals()
            .map(|(t, _)| t)
            .chain(self.globals.iter().map(|g| g.ty));
        if self.global_refs.len() != globals
            || !global_types.zip(&self.global_refs).all(|(ty, r)| match r {
                None => !matches!(ty, ValType::FuncRef | ValType::ExternRef),
                Some(r) => ref_ok(r, ty),
            })
        {
            return bad("global reference types");
        }
        let table_types = self
            .imported_tables()
            .map(|t| t.ty)
            .chain(self.tables.iter().map(|t| t.ty));
        if self.table_refs.len() != tables
            || !table_types
                .zip(&self.table_refs)
                .all(|(ty, r)| ref_ok(r, ty))
        {
            return bad("table reference types");
        }
        // Type indices were range-checked while reading; a tag's type must
        // have no results.
        let tag_type_ok = |t: u32| {
            self.types
                .get(t as usize)
                .is_some_and(|ty| ty.results.is_empty())
        };
        if !self
            .imported_tags()
            .chain(self.tags.iter().copied())
            .all(tag_type_ok)
        {
            return bad("tag type has results or is out of range");
        }
        if !self.globals.iter().all(|g| expr_ok(&g.init)) {
            return bad("global initialiser index out of range");
        }
        if !self.tables.iter().all(|t| expr_ok(&t.init)) {
            return bad("table initialiser index out of range");
        }
        if !self.data.iter().all(|d| expr_ok(&d.offset))
            || (self.data.iter().any(|d| !d.passive) && !has_memory)
        {
            return bad("data segment out of range");
        }
        for e in &self.elems {
            if let ElemMode::Active { table, offset } = &e.mode {
                if *table as usize >= tables || !expr_ok(offset) {
                    return bad("element segment table out of range");
                }
            }
            let ok = e.items.iter().all(|i| match i {
                ElemItem::Null => true,
                ElemItem::Func(f) => (*f as usize) < funcs,
                ElemItem::Global(g) => (*g as usize) < globals,
            });
            if !ok {
                return bad("element item out of range");
            }
        }
        for e in &self.exports {
            let ok = match e.kind {
                ExportKind::Func => (e.index as usize) < funcs,
                ExportKind::Global => (e.index as usize) < globals,
                ExportKind::Table => (e.index as usize) < tables,
                ExportKind::Memory => e.index == 0 && has_memory,
                ExportKind::Tag => (e.index as usize) < tags,
            };
            if !ok {
                return bad("export index out of range");
            }
        }
        if self.start.is_some_and(|s| s as usize >= funcs) {
            return bad("start function out of range");
        }
        if self
            .traps
            .iter()
            .any(|t| t.func_index as usize >= self.func_types.len())
        {
            return bad("trap site function out of range");
        }
        if self.wrappers.len() != self.wrapped_funcs().len()
            || self.stubs.len() != self.num_imported_funcs()
        {
            return bad("wrapper or stub count");
        }
        Ok(())
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn memory(&mut self, m: &MemoryDecl) {
        self.u64(m.min_pages);
        self.opt_u64(m.max_pages);
        self.u8(m.page_size_log2);
    }
    fn table(&mut self, t: &TableDecl) {
        self.u8(t.ty as u8);
        self.u64(t.min);
        self.opt_u64(t.max);
        self.expr(&t.init);
    }
    fn expr(&mut self, e: &ConstExpr) {
        self.u32(e.0.len() as u32);
        for op in &e.0 {
            match *op {
                ConstOp::I32(v) => {
                    self.u8(0);
                    self.u32(v);
                }
                ConstOp::I64(v) => {
                    self.u8(1);
                    self.u64(v);
                }
                ConstOp::F32(v) => {
                    self.u8(2);
                    self.u32(v);
                }
                ConstOp::F64(v) => {
                    self.u8(3);
                    self.u64(v);
                }
                ConstOp::RefNull => self.u8(4),
                ConstOp::RefFunc(f) => {
                    self.u8(5);
                    self.u32(f);
                }
                ConstOp::GlobalGet(g) => {
                    self.u8(6);
                    self.u32(g);
                }
                ConstOp::I32Add => self.u8(7),
                ConstOp::I32Sub => self.u8(8),
                ConstOp::I32Mul => self.u8(9),
                ConstOp::I64Add => self.u8(10),
                ConstOp::I64Sub => self.u8(11),
                ConstOp::I64Mul => self.u8(12),
            }
        }
    }
    fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MetadataError> {
        if self.0.len() < n {
            return Err(MetadataError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, MetadataError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, MetadataError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, MetadataError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// A length that must fit in what is left (each element takes at least a byte).
    fn count(&mut self) -> Result<usize, MetadataError> {
        let n = self.u32()? as usize;
        if n > self.0.len() {
            return Err(MetadataError::Truncated);
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8], MetadataError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn opt_u64(&mut self) -> Result<Option<u64>, MetadataError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            _ => Err(MetadataError::Malformed("option flag")),
        }
    }
    fn val_type(&mut self) -> Result<ValType, MetadataError> {
        ValType::from_code(self.u8()?).ok_or(MetadataError::Malformed("value type"))
    }
    fn flag(&mut self) -> Result<bool, MetadataError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(MetadataError::Malformed("flag")),
        }
    }
    fn string(&mut self) -> Result<String, MetadataError> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| MetadataError::Malformed("name is not UTF-8"))
    }
    fn memory(&mut self) -> Result<MemoryDecl, MetadataError> {
        let min_pages = self.u64()?;
        let max_pages = self.opt_u64()?;
        let page_size_log2 = self.u8()?;
        if page_size_log2 > 16 {
            return Err(MetadataError::Malformed("page size"));
        }
        Ok(MemoryDecl {
            min_pages,
            max_pages,
            page_size_log2,
        })
    }
    fn table(&mut self) -> Result<TableDecl, MetadataError> {
        let ty = self.val_type()?;
        if !matches!(ty, ValType::FuncRef | ValType::ExternRef) {
            return Err(MetadataError::Malformed("table element type"));
        }
        Ok(TableDecl {
            ty,
            min: self.u64()?,
            max: self.opt_u64()?,
            init: self.expr()?,
        })
    }
    fn expr(&mut self) -> Result<ConstExpr, MetadataError> {
        let mut ops = Vec::new();
        for _ in 0..self.count()? {
            ops.push(match self.u8()? {
                0 => ConstOp::I32(self.u32()?),
                1 => ConstOp::I64(self.u64()?),
                2 => ConstOp::F32(self.u32()?),
                3 => ConstOp::F64(self.u64()?),
                4 => ConstOp::RefNull,
                5 => ConstOp::RefFunc(self.u32()?),
                6 => ConstOp::GlobalGet(self.u32()?),
                7 => ConstOp::I32Add,
                8 => ConstOp::I32Sub,
                9 => ConstOp::I32Mul,
                10 => ConstOp::I64Add,
                11 => ConstOp::I64Sub,
                12 => ConstOp::I64Mul,
                _ => return Err(MetadataError::Malformed("constant expression")),
            });
        }
        Ok(ConstExpr(ops))
    }
}
