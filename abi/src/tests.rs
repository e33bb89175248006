//! Round trips and refusals of the metadata encoding.

use crate::*;

fn sample() -> Metadata {
    Metadata {
        abi_version: ABI_VERSION,
        fingerprint: 0x1234,
        target: crate::target::HOST_TARGET.into(),
        cpu_features: vec!["has_sse3".into(), "has_popcnt".into()],
        source_key: [0x5a; 32],
        guard_bytes: 0,
        heap_reservation: 0,
        requested_guard_bytes: 0,
        requested_heap_reservation: 0,
        types: vec![
            FuncType {
                params: vec![ValType::I32, ValType::I64],
                results: vec![ValType::I64],
            },
            FuncType {
                params: vec![ValType::F32],
                results: vec![],
            },
        ],
        imports: vec![
            Import {
                module: "env".into(),
                name: "f".into(),
                kind: ImportKind::Func(0),
            },
            Import {
                module: "env".into(),
                name: "g".into(),
                kind: ImportKind::Global {
                    ty: ValType::I32,
                    mutable: false,
                },
            },
            Import {
                module: "env".into(),
                name: "t".into(),
                kind: ImportKind::Tag(1),
            },
        ],
        func_types: vec![0, 0],
        memory: Some(MemoryDecl {
            min_pages: 1,
            max_pages: Some(4),
            page_size_log2: 16,
        }),
        globals: vec![GlobalDecl {
            ty: ValType::I64,
            mutable: true,
            init: ConstExpr(vec![ConstOp::I64(7)]),
        }],
        data: vec![DataSegment {
            passive: false,
            offset: ConstExpr(vec![
                ConstOp::GlobalGet(0),
                ConstOp::I32(16),
                ConstOp::I32Add,
            ]),
            bytes: b"hello".to_vec(),
        }],
        tables: vec![
            TableDecl {
                ty: ValType::FuncRef,
                min: 2,
                max: Some(10),
                init: ConstExpr(vec![ConstOp::RefFunc(1)]),
            },
            TableDecl {
                ty: ValType::ExternRef,
                min: 0,
                max: None,
                init: ConstExpr::null(),
            },
        ],
        elems: vec![
            ElemSegment {
                mode: ElemMode::Active {
                    table: 0,
                    offset: ConstExpr::i32(1),
                },
                items: vec![ElemItem::Func(0), ElemItem::Null, ElemItem::Global(1)],
            },
            ElemSegment {
                mode: ElemMode::Passive,
                items: vec![ElemItem::Func(2)],
            },
            ElemSegment {
                mode: ElemMode::Declared,
                items: vec![],
            },
        ],
        tags: vec![1, 1],
        global_refs: vec![None, None],
        table_refs: vec![
            RefPrecise {
                nullable: false,
                heap: RefHeap::Concrete(0),
            },
            RefPrecise::plain(ValType::ExternRef).expect("a reference type"),
        ],
        func_refs: true,
        exports: vec![
            Export {
                name: "run".into(),
                kind: ExportKind::Func,
                index: 1,
            },
            Export {
                name: "mem".into(),
                kind: ExportKind::Memory,
                index: 0,
            },
            Export {
                name: "tag".into(),
                kind: ExportKind::Tag,
                index: 2,
            },
        ],
        start: None,
        traps: vec![TrapSite {
            func_index: 0,
            offset: 12,
            kind: TrapKind::Unreachable,
        }],
        wrappers: vec![HelperCode {
            frame_bytes: 48,
            traps: vec![(4, TrapKind::StackOverflow)],
        }],
        stubs: vec![HelperCode {
            frame_bytes: 16,
            traps: vec![],
        }],
    }
}

#[test]
fn const_exprs_evaluate() {
    let e = ConstExpr(vec![
        ConstOp::GlobalGet(0),
        ConstOp::I32(16),
        ConstOp::I32Add,
    ]);
    assert_eq!(e.eval(|_| 0xffff_fff0, |_| 0), Some(0));
    assert_eq!(e.as_plain(), None);
    assert_eq!(ConstExpr::i32(5).as_plain(), Some(5));
    assert_eq!(ConstExpr(vec![ConstOp::I32Add]).eval(|_| 0, |_| 0), None);
}

#[test]
fn out_of_range_indices_are_refused() {
    let mut m = sample();
    m.exports[0].index = 9;
    assert!(Metadata::decode(&m.encode()).is_err());
    let mut m = sample();
    m.elems[1].items[0] = ElemItem::Func(4);
    assert!(Metadata::decode(&m.encode()).is_err());
    // Tags: one imported + two defined, so index 3 is out of range.
    let mut m = sample();
    m.exports[2].index = 3;
    assert!(Metadata::decode(&m.encode()).is_err());
    let mut m = sample();
    m.tags.push(2);
    assert!(Metadata::decode(&m.encode()).is_err());
    let mut m = sample();
    m.imports[2].kind = ImportKind::Tag(5);
    assert!(Metadata::decode(&m.encode()).is_err());
}

#[test]
fn tag_types_with_results_are_refused() {
    // Type 0 has a result: not a valid tag type.
    let mut m = sample();
    m.tags[1] = 0;
    assert_eq!(
        Metadata::decode(&m.encode()),
        Err(MetadataError::Malformed(
            "tag type has results or is out of range"
        ))
    );
    let mut m = sample();
    m.imports[2].kind = ImportKind::Tag(0);
    assert!(Metadata::decode(&m.encode()).is_err());
}

#[test]
fn tag_index_space_puts_imports_first() {
    let m = sample();
    assert_eq!(m.num_imported_tags(), 1);
    assert_eq!(m.tag_type_index(0), Some(1));
    assert_eq!(m.tag_type_index(2), Some(1));
    assert_eq!(m.tag_type_index(3), None);
    assert_eq!(
        m.tag_type(1).map(|t| t.params.clone()),
        Some(vec![ValType::F32])
    );
}

#[test]
fn metadata_round_trips() {
    let m = sample();
    assert_eq!(Metadata::decode(&m.encode()), Ok(m));
}

#[test]
fn every_flipped_byte_is_refused() {
    let blob = sample().encode();
    for i in 0..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 0x40;
        assert!(Metadata::decode(&bad).is_err(), "flip at {i} accepted");
    }
}

#[test]
fn truncation_is_refused() {
    let blob = sample().encode();
    for n in 0..blob.len() {
        assert!(Metadata::decode(&blob[..n]).is_err(), "prefix {n} accepted");
    }
}

#[test]
fn other_abi_version_is_refused_by_name() {
    let mut m = sample();
    m.abi_version = ABI_VERSION + 1;
    assert_eq!(
        Metadata::decode(&m.encode()),
        Err(MetadataError::AbiVersion {
            found: ABI_VERSION + 1,
            expected: ABI_VERSION
        })
    );
}

#[test]
fn artifact_hash_ignores_only_the_hash_cell() {
    let mut file = vec![1u8; 64];
    file[8..24].copy_from_slice(&HASH_MARKER);
    let at = find_marker(&file, &HASH_MARKER).unwrap();
    let h = artifact_hash(&file, at);
    file[24] = 99; // inside the hash cell
    file[55] = 98; // still inside
    assert_eq!(artifact_hash(&file, at), h);
    file[56] = 2; // outside
    assert_ne!(artifact_hash(&file, at), h);
}

#[test]
fn trap_codes_round_trip() {
    for k in TrapKind::ALL {
        assert_eq!(TrapKind::from_code(k as u8), Some(k));
    }
    assert_eq!(TrapKind::from_code(0), None);
}

#[test]
fn the_checksum_sees_every_flipped_bit_and_every_length() {
    // Lengths around the 32-byte blocks: tail only, one block, block and
    // tail, several blocks.
    for len in [0usize, 1, 7, 31, 32, 33, 64, 100, 1000] {
        let data: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
        let h = hash64(&data);
        for byte in 0..len {
            for bit in 0..8 {
                let mut d = data.clone();
                d[byte] ^= 1 << bit;
                assert_ne!(hash64(&d), h, "len {len}: bit {bit} of byte {byte}");
            }
        }
        // A zero byte more, or one fewer, is another input.
        let mut longer = data.clone();
        longer.push(0);
        assert_ne!(hash64(&longer), h, "len {len} + a zero byte");
        if len > 0 {
            assert_ne!(hash64(&data[..len - 1]), h, "len {len} - 1");
        }
    }
    // Words swapped between lanes of one block change it too.
    let mut a = [0u8; 32];
    a[0] = 1;
    let mut b = [0u8; 32];
    b[8] = 1;
    assert_ne!(hash64(&a), hash64(&b));
}
