//! Rough timings (ignored by default; run with
//! `cargo test -p myriad-runtime --release --test perf -- --ignored --nocapture`).

mod common;

use common::*;
use myriad_runtime::{Instance, Outcome, Val};
use std::time::Instant;

#[test]
#[ignore]
fn timings() {
    let region = test_region(64);
    let m = test_module(); // 16 KiB heap (4 x 4 KiB pages)
    let n = 20_000;
    // Warm the slot: a guest dirties one heap page.
    for _ in 0..10 {
        let mut i = Instance::new(&region, &m, "poke", &[Val::I64(100), Val::I64(1)]).unwrap();
        i.resume(u64::MAX / 2);
    }
    let (mut t_new, mut t_drop) = (0u128, 0u128);
    for _ in 0..n {
        let t0 = Instant::now();
        let mut i = Instance::new(&region, &m, "poke", &[Val::I64(100), Val::I64(1)]).unwrap();
        let t1 = Instant::now();
        i.resume(u64::MAX / 2);
        let t2 = Instant::now();
        drop(i);
        let t3 = Instant::now();
        t_new += (t1 - t0).as_nanos();
        t_drop += (t3 - t2).as_nanos();
    }
    eprintln!(
        "instantiate (16 KiB heap, warm slot): {} ns",
        t_new / n as u128
    );
    eprintln!(
        "teardown (1 dirty page of 4, warm): {} ns",
        t_drop / n as u128
    );
    // Teardown when the guest touched all 4 pages (all known resident: memset only).
    let mut t_drop = 0u128;
    for _ in 0..n {
        let mut i = Instance::new(&region, &m, "poke", &[Val::I64(3 * 4096), Val::I64(1)]).unwrap();
        i.resume(u64::MAX / 2);
        for p in 0..4 {
            i.memory_mut()[p * 4096] = 1;
        }
        let t2 = Instant::now();
        drop(i);
        t_drop += t2.elapsed().as_nanos();
    }
    eprintln!(
        "teardown (16 KiB all dirty, warm): {} ns",
        t_drop / n as u128
    );

    // Hot yield + resume round trip (includes the slow path's TSC read).
    let mut i = Instance::new(&region, &m, "spin", &[Val::I64(i64::MAX)]).unwrap();
    let k = 200_000;
    let t0 = Instant::now();
    for _ in 0..k {
        assert_eq!(i.resume_with_fuel(0, 0), Outcome::Yielded);
    }
    eprintln!(
        "yield+resume round trip (hot, incl. rdtsc): {:.1} ns",
        t0.elapsed().as_nanos() as f64 / k as f64
    );
    let heap = region.heap_base(0);
    let mut v = [0u8; 4];
    let t0 = Instant::now();
    for _ in 0..k {
        // SAFETY: our region's heap, page aligned.
        unsafe { libc::mincore(heap.cast(), 4 * 4096, v.as_mut_ptr()) };
    }
    eprintln!(
        "mincore 4 pages: {:.1} ns",
        t0.elapsed().as_nanos() as f64 / k as f64
    );
    let t0 = Instant::now();
    for _ in 0..k {
        // SAFETY: plain syscall.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    eprintln!(
        "getppid syscall: {:.1} ns",
        t0.elapsed().as_nanos() as f64 / k as f64
    );
    let t0 = Instant::now();
    for _ in 0..k {
        std::hint::black_box(myriad_runtime::rdtsc());
    }
    eprintln!("rdtsc: {:.1} ns", t0.elapsed().as_nanos() as f64 / k as f64);
}

/// A large artifact: `funcs` functions with some arithmetic each, plus a
/// `data_kib` KiB data segment.
fn large_wat(funcs: usize, data_kib: usize) -> String {
    let mut w = String::from("(module (memory 128)\n");
    for i in 0..funcs {
        w.push_str(&format!(
            "(func (export \"f{i}\") (param i64) (result i64) (local i64)
               (local.set 1 (i64.const {i}))
               (block (loop
                 (br_if 1 (i64.eqz (local.get 0)))
                 (local.set 1 (i64.add (i64.mul (local.get 1) (i64.const 31)) (local.get 0)))
                 (local.set 1 (i64.xor (local.get 1) (i64.shr_u (local.get 1) (i64.const 7))))
                 (i64.store (i32.wrap_i64 (i64.and (local.get 1) (i64.const 0xfff8))) (local.get 1))
                 (local.set 0 (i64.sub (local.get 0) (i64.const 1)))
                 (br 0)))
               (local.get 1))\n"
        ));
    }
    w.push_str("(data (i32.const 0) \"");
    for _ in 0..data_kib * 1024 {
        w.push('x');
    }
    w.push_str("\"))");
    w
}

#[test]
#[ignore]
fn large_artifact_load() {
    let wasm = wat::parse_str(large_wat(4000, 2048)).unwrap();
    let t0 = Instant::now();
    let so = myriad_codegen::compile(&wasm, &Default::default()).unwrap();
    eprintln!(
        "compiled {} wasm bytes to a {} byte artifact in {:.0} ms",
        wasm.len(),
        so.len(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("perf-large-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("large.so");
    std::fs::write(&p, &so).unwrap();
    let at = myriad_codegen::abi::find_marker(&so, &myriad_codegen::abi::HASH_MARKER).unwrap();
    let mut hash = Vec::new();
    let mut find = Vec::new();
    let mut load = Vec::new();
    for _ in 0..31 {
        let t = Instant::now();
        std::hint::black_box(myriad_codegen::abi::artifact_hash(&so, at));
        hash.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        std::hint::black_box(myriad_codegen::abi::find_marker(
            &so,
            &myriad_codegen::abi::METADATA_MARKER,
        ));
        find.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let m = myriad_runtime::Module::from_file(&p).unwrap();
        load.push(t.elapsed().as_secs_f64() * 1e3);
        drop(m);
    }
    for v in [&mut hash, &mut find, &mut load] {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    let mb = so.len() as f64 / 1e6;
    eprintln!(
        "whole-file hash of {mb:.1} MB: median {:.2} ms ({:.2} GB/s), min {:.2} ms",
        hash[15],
        mb / hash[15],
        hash[0]
    );
    eprintln!(
        "one marker scan: median {:.2} ms, min {:.2} ms",
        find[15], find[0]
    );
    eprintln!(
        "Module::from_file: median {:.2} ms, min {:.2} ms",
        load[15], load[0]
    );
    // Through the cache: the first call compiles (miss), later ones hash
    // the wasm for the source key and load the entry (hit).
    let cache = dir.join("cache");
    let cfg = myriad_codegen::CompileConfig::default();
    let t = Instant::now();
    let key = myriad_codegen::source_key(&wasm, &cfg);
    let t_key = t.elapsed().as_secs_f64() * 1e3;
    std::hint::black_box(key);
    let t = Instant::now();
    drop(myriad_runtime::Module::compile(&wasm, &cfg, &cache).unwrap());
    let t_miss = t.elapsed().as_secs_f64() * 1e3;
    let mut hits = Vec::new();
    for _ in 0..11 {
        let t = Instant::now();
        drop(myriad_runtime::Module::compile(&wasm, &cfg, &cache).unwrap());
        hits.push(t.elapsed().as_secs_f64() * 1e3);
    }
    hits.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "source key of {:.1} MB of wasm: {t_key:.2} ms; Module::compile miss {t_miss:.0} ms, \
         hit median {:.2} ms, min {:.2} ms",
        wasm.len() as f64 / 1e6,
        hits[5],
        hits[0]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
