//! docs/ARCHITECTURE.md states the ABI and the runtime's constants in
//! tables; this test reads those tables and checks every number against
//! the code, so the document cannot drift from it:
//!
//! * the vmctx layout (`| Offset | Constant | ...`) and the record sizes
//!   (`| Size | Constant | ...`) against `myriad_abi::vmctx`, and every
//!   constant of that module must have a row;
//! * the ABI constants (`| ABI constant | Value | ...`) against
//!   `myriad_abi`;
//! * the trap kinds (`| Code | TrapKind | Message |`) against
//!   `myriad_abi::TrapKind`, every kind must have a row;
//! * the runtime constants (`| Runtime constant | Value | ...`, in any
//!   number of tables) against `myriad_runtime`;
//! * the stated ABI version and the symbol names.

use myriad_abi::vmctx;
use std::collections::BTreeMap;

const DOC: &str = "docs/ARCHITECTURE.md";

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ARCHITECTURE.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// One row of a markdown table: its line number (1-based) and its cells,
/// trimmed, with backticks removed.
struct Row {
    line: usize,
    cells: Vec<String>,
}

impl Row {
    fn cell(&self, i: usize) -> &str {
        self.cells.get(i).map_or("", String::as_str)
    }
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner
        .split('|')
        .map(|c| c.trim().replace('`', ""))
        .collect()
}

/// The rows of every table whose header's first cells are `header`
/// (compared without backticks), in document order. Panics if there is no
/// such table.
fn tables(doc: &str, header: &[&str]) -> Vec<Row> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut rows = Vec::new();
    let mut found = false;
    let mut i = 0;
    while i < lines.len() {
        let head = cells(lines[i]);
        let is_header = lines[i].trim_start().starts_with('|')
            && head.len() >= header.len()
            && head.iter().zip(header).all(|(a, b)| a == b);
        if !is_header {
            i += 1;
            continue;
        }
        found = true;
        // Skip the header and the `|---|` separator.
        i += 2;
        while i < lines.len() && lines[i].trim_start().starts_with('|') {
            rows.push(Row {
                line: i + 1,
                cells: cells(lines[i]),
            });
            i += 1;
        }
    }
    assert!(
        found,
        "{DOC} has no table with the header `| {} |`",
        header.join(" | ")
    );
    rows
}

/// A number as the document writes it: decimal digits with optional `,`
/// or `_` separators, up to the first other character.
fn number(text: &str, row: &Row) -> i128 {
    let digits: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '_')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or_else(|_| {
        panic!(
            "{DOC}:{}: `{text}` is not a number (row `{}`)",
            row.line,
            row.cells.join(" | ")
        )
    })
}

/// Check the rows of the tables with `header`: the name in column `name`
/// and the value in column `value` must be an entry of `expected`; with
/// `complete`, every entry must have a row.
fn check(
    doc: &str,
    header: &[&str],
    name: usize,
    value: usize,
    expected: &[(&str, i128)],
    complete: bool,
) {
    let expected: BTreeMap<&str, i128> = expected.iter().copied().collect();
    let mut seen = BTreeMap::new();
    for row in tables(doc, header) {
        let key = row.cell(name).to_owned();
        let Some(&want) = expected.get(key.as_str()) else {
            panic!(
                "{DOC}:{}: the table `| {} |` names `{key}`, which this test does not know; \
                 is it a constant of the code? (add it to the test's list if so)",
                row.line,
                header.join(" | ")
            );
        };
        let got = number(row.cell(value), &row);
        assert_eq!(
            got, want,
            "{DOC}:{}: the row for `{key}` says {got}, the code says {want}",
            row.line
        );
        if let Some(first) = seen.insert(key.clone(), row.line) {
            panic!(
                "{DOC}:{}: `{key}` has a second row (the first is on line {first})",
                row.line
            );
        }
    }
    if complete {
        for name in expected.keys() {
            assert!(
                seen.contains_key(*name),
                "{DOC}: the table `| {} |` has no row for `{name}`",
                header.join(" | ")
            );
        }
    }
}

#[test]
fn vmctx_layout_matches_the_abi() {
    let doc = doc();
    // Every constant of `myriad_abi::vmctx`: the header fields, the end of
    // the header and the start of the globals.
    let offsets: &[(&str, i128)] = &[
        ("FUEL", vmctx::FUEL.into()),
        ("STACK_LIMIT", vmctx::STACK_LIMIT.into()),
        ("HEAP_BASE", vmctx::HEAP_BASE.into()),
        ("HEAP_LEN", vmctx::HEAP_LEN.into()),
        ("FN_FUEL_EXHAUSTED", vmctx::FN_FUEL_EXHAUSTED.into()),
        ("FN_MEMORY_GROW", vmctx::FN_MEMORY_GROW.into()),
        ("TYPE_IDS", vmctx::TYPE_IDS.into()),
        ("TABLES", vmctx::TABLES.into()),
        ("FUNC_REFS", vmctx::FUNC_REFS.into()),
        ("FN_TABLE_GROW", vmctx::FN_TABLE_GROW.into()),
        ("FN_TABLE_FILL", vmctx::FN_TABLE_FILL.into()),
        ("FN_TABLE_COPY", vmctx::FN_TABLE_COPY.into()),
        ("FN_TABLE_INIT", vmctx::FN_TABLE_INIT.into()),
        ("FN_ELEM_DROP", vmctx::FN_ELEM_DROP.into()),
        ("FN_MEMORY_INIT", vmctx::FN_MEMORY_INIT.into()),
        ("FN_DATA_DROP", vmctx::FN_DATA_DROP.into()),
        ("FN_HOST_CALL", vmctx::FN_HOST_CALL.into()),
        ("FN_MEMORY_FILL", vmctx::FN_MEMORY_FILL.into()),
        ("FN_MEMORY_COPY", vmctx::FN_MEMORY_COPY.into()),
        ("EXEC", vmctx::EXEC.into()),
        ("ABI_HEADER_SIZE", vmctx::ABI_HEADER_SIZE as i128),
        ("GLOBALS", vmctx::GLOBALS.into()),
    ];
    check(&doc, &["Offset", "Constant"], 1, 0, offsets, true);
    let sizes: &[(&str, i128)] = &[
        ("TABLE_DESC_SIZE", vmctx::TABLE_DESC_SIZE.into()),
        ("FUNC_REF_SIZE", vmctx::FUNC_REF_SIZE.into()),
        ("GLOBAL_SIZE", vmctx::GLOBAL_SIZE.into()),
    ];
    check(&doc, &["Size", "Constant"], 1, 0, sizes, true);

    // The layout table lists the header in offset order, 8 bytes apart.
    let rows = tables(&doc, &["Offset", "Constant"]);
    for pair in rows.windows(2) {
        let (a, b) = (
            number(pair[0].cell(0), &pair[0]),
            number(pair[1].cell(0), &pair[1]),
        );
        assert!(
            a < b,
            "{DOC}:{}: the vmctx table is not in offset order",
            pair[1].line
        );
    }
}

#[test]
fn abi_version_and_constants_match() {
    let doc = doc();
    let marker = "(`myriad_abi::ABI_VERSION`) is **";
    let at = doc
        .find(marker)
        .unwrap_or_else(|| panic!("{DOC} does not state the ABI version as `{marker}N**`"));
    let rest = &doc[at + marker.len()..];
    let stated: u32 = rest[..rest.find("**").unwrap_or(0)]
        .parse()
        .unwrap_or_else(|_| panic!("{DOC}: the stated ABI version is not a number"));
    assert_eq!(
        stated,
        myriad_abi::ABI_VERSION,
        "{DOC} says the ABI version is {stated}, myriad_abi::ABI_VERSION is {}",
        myriad_abi::ABI_VERSION
    );

    let abi: &[(&str, i128)] = &[
        ("BULK_DONE", myriad_abi::BULK_DONE.into()),
        ("BULK_TRAP", myriad_abi::BULK_TRAP.into()),
        ("BULK_MORE", myriad_abi::BULK_MORE.into()),
        ("HASH_LEN", myriad_abi::HASH_LEN as i128),
    ];
    check(&doc, &["ABI constant", "Value"], 0, 1, abi, true);
}

#[test]
fn trap_kinds_match() {
    let doc = doc();
    let mut seen = Vec::new();
    for row in tables(&doc, &["Code", "TrapKind", "Message"]) {
        let code = number(row.cell(0), &row);
        let kind = u8::try_from(code)
            .ok()
            .and_then(myriad_abi::TrapKind::from_code)
            .unwrap_or_else(|| panic!("{DOC}:{}: trap code {code} is not a TrapKind", row.line));
        assert_eq!(
            row.cell(1),
            format!("{kind:?}"),
            "{DOC}:{}: trap code {code} is {kind:?} in the code",
            row.line
        );
        assert_eq!(
            row.cell(2),
            kind.message(),
            "{DOC}:{}: the message of {kind:?} differs from TrapKind::message",
            row.line
        );
        seen.push(kind);
    }
    for kind in myriad_abi::TrapKind::ALL {
        assert!(
            seen.contains(&kind),
            "{DOC}: the trap kind table has no row for {kind:?}"
        );
    }
}

#[test]
fn symbols_match() {
    let doc = doc();
    // `myriad_func_<i>` etc.: the functions' prefix with `<i>` for the index.
    for (what, name) in [
        ("defined function", myriad_abi::func_symbol(7)),
        ("export wrapper", myriad_abi::export_wrapper_symbol(7)),
        ("import stub", myriad_abi::import_stub_symbol(7)),
    ] {
        let shown = format!("`{}<i>`", name.trim_end_matches('7'));
        assert!(
            doc.contains(&shown),
            "{DOC} does not name the {what} symbol as {shown}"
        );
    }
    for symbol in [myriad_abi::METADATA_SYMBOL, myriad_abi::HASH_SYMBOL] {
        assert!(
            doc.contains(&format!("`{symbol}`")),
            "{DOC} does not name the symbol `{symbol}`"
        );
    }
    for marker in [myriad_abi::METADATA_MARKER, myriad_abi::HASH_MARKER] {
        // Shown as text with the trailing NUL written `\0`.
        let text = String::from_utf8_lossy(&marker[..marker.len() - 1]).into_owned() + "\\0";
        assert!(
            doc.contains(&format!("`{text}`")),
            "{DOC} does not show the marker `{text}`"
        );
    }
}

#[test]
fn runtime_constants_match() {
    use myriad_runtime::{arch, fuel, region, signals, table, traps};
    let doc = doc();
    let constants: &[(&str, i128)] = &[
        (
            "size_of::<vmctx::VmCtx>()",
            std::mem::size_of::<myriad_runtime::vmctx::VmCtx>() as i128,
        ),
        (
            "vmctx::MAX_VALUES",
            myriad_runtime::vmctx::MAX_VALUES as i128,
        ),
        ("region::STACK_RESERVE", region::STACK_RESERVE as i128),
        (
            "region::TRAMPOLINE_FRAME_MAX",
            region::TRAMPOLINE_FRAME_MAX as i128,
        ),
        ("region::CTX_AREA", region::CTX_AREA as i128),
        ("region::COLOURS", region::COLOURS as i128),
        ("region::MAX_VMCTX_BYTES", region::MAX_VMCTX_BYTES as i128),
        ("region::MAP_COUNT_SLACK", region::MAP_COUNT_SLACK as i128),
        ("region::SCAN_MAX_PAGES", region::SCAN_MAX_PAGES as i128),
        (
            "region::DONTNEED_THRESHOLD",
            region::DONTNEED_THRESHOLD.into(),
        ),
        ("arch::FRAME_BYTES", arch::FRAME_BYTES as i128),
        ("arch::HOST_RED_ZONE", arch::HOST_RED_ZONE as i128),
        (
            "arch::ASYNC_PREEMPT_FRAME",
            arch::ASYNC_PREEMPT_FRAME as i128,
        ),
        (
            "fuel::DEFAULT_ASYNC_PREEMPT_MIN_NS",
            fuel::DEFAULT_ASYNC_PREEMPT_MIN_NS.into(),
        ),
        (
            "fuel::ASYNC_BACKSTOP_FACTOR",
            fuel::ASYNC_BACKSTOP_FACTOR.into(),
        ),
        ("arch::WINDOW_SCAN_BYTES", arch::WINDOW_SCAN_BYTES as i128),
        ("fuel::RATE_SHIFT", fuel::RATE_SHIFT.into()),
        ("fuel::DEFAULT_RATE", fuel::DEFAULT_RATE.into()),
        ("fuel::MIN_RATE", fuel::MIN_RATE.into()),
        ("fuel::MAX_RATE", fuel::MAX_RATE.into()),
        ("fuel::MAX_FUEL", fuel::MAX_FUEL.into()),
        ("fuel::EARLY_YIELD_CYCLES", fuel::EARLY_YIELD_CYCLES.into()),
        ("fuel::CLOSE_CYCLES", fuel::CLOSE_CYCLES.into()),
        ("fuel::MAX_AIM_CYCLES", fuel::MAX_AIM_CYCLES.into()),
        ("fuel::HOST_CALL_CYCLES", fuel::HOST_CALL_CYCLES.into()),
        ("table::TABLE_CHUNK", table::TABLE_CHUNK.into()),
        (
            "table::MAX_TABLE_ELEMENTS",
            table::MAX_TABLE_ELEMENTS.into(),
        ),
        (
            "table::TABLE_ELEMENT_BYTES",
            table::TABLE_ELEMENT_BYTES.into(),
        ),
        ("signals::ALT_STACK_SIZE", signals::ALT_STACK_SIZE as i128),
        ("traps::REGISTRY_SLOTS", traps::REGISTRY_SLOTS as i128),
    ];
    check(&doc, &["Runtime constant", "Value"], 0, 1, constants, true);
}
