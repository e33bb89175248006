//! Link groups and the running green thread: a linked instance's code runs
//! on its caller's stack and finds that stack's limit and exec through its
//! own vmctx, so the runtime points every member of a group at the green
//! thread that runs (and back when it stops), and keeps other threads out
//! of a group while it runs.
//!
//! A member whose vmctx named the wrong stack would either trap at once
//! (the other stack's limit above this one) or not be checked at all and
//! overflow into the slot below: each test makes shallow calls (no false
//! trap) and deep recursion (a clean `StackOverflow`), with the caller
//! and callee in both slot orders.

mod compiled;

use compiled::{call, compile_wat, region_with};
use myriad_codegen::CompileConfig;
use myriad_runtime::{
    Caller, Instance, InstantiateError, LinkError, Linker, Outcome, Region, TrapKind, Val,
};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `deep(n)` recurses `n` frames in its own code; `deep_table(n)` the
/// same through its table.
const PROVIDER: &str = r#"(module
  (table (export "tab") 1 funcref)
  (elem (i32.const 0) $deep)
  (type $t (func (param i32) (result i32)))
  (func $deep (export "deep") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $deep (i32.sub (local.get 0) (i32.const 1))))))))"#;

/// Calls the provider directly and through the shared table; `nest`
/// first calls the host (which may run other instances of the group).
const CONSUMER: &str = r#"(module
  (import "p" "deep" (func $deep (param i32) (result i32)))
  (import "p" "tab" (table 1 funcref))
  (import "env" "host" (func $host))
  (type $t (func (param i32) (result i32)))
  (func (export "direct") (param i32) (result i32) (call $deep (local.get 0)))
  (func (export "indirect") (param i32) (result i32)
    (call_indirect (type $t) (local.get 0) (i32.const 0)))
  (func (export "nest") (param i32) (result i32)
    (call $host)
    (i32.add (call $deep (local.get 0))
             (call_indirect (type $t) (local.get 0) (i32.const 0)))))"#;

fn modules() -> (Arc<myriad_runtime::Module>, Arc<myriad_runtime::Module>) {
    (
        compile_wat(PROVIDER, &CompileConfig::default()),
        compile_wat(CONSUMER, &CompileConfig::default()),
    )
}

/// A consumer of `p` whose host function runs `host`.
fn consumer(
    region: &Arc<Region>,
    m: &Arc<myriad_runtime::Module>,
    p: &Instance,
    host: impl Fn() + Send + Sync + 'static,
) -> Instance {
    let mut linker = Linker::new();
    linker.instance("p", p);
    linker.func_wrap("env", "host", move |_: &mut Caller<'_>| host());
    linker
        .instantiate(region, m, None)
        .expect("instantiate consumer")
}

/// A consumer of `p` that stays 100 ms inside its host call, with
/// `inside` set meanwhile.
fn slow_consumer(
    region: &Arc<Region>,
    m: &Arc<myriad_runtime::Module>,
    p: &Instance,
    inside: &Arc<AtomicBool>,
) -> Instance {
    let inside = inside.clone();
    consumer(region, m, p, move || {
        inside.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        inside.store(false, Ordering::SeqCst);
    })
}

/// Call `nest(1)` on each instance on a thread of its own; their
/// outcomes in the order they returned, or `None` if they did not all
/// return within 20 s (a deadlock: the threads are left blocked).
fn nest_on_threads(instances: Vec<Instance>) -> Option<Vec<Outcome>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let n = instances.len();
    for mut i in instances {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(call(&mut i, "nest", &[Val::I32(1)]));
        });
    }
    let mut done = Vec::new();
    while done.len() < n {
        done.push(rx.recv_timeout(Duration::from_secs(20)).ok()?);
    }
    Some(done)
}

/// Shallow calls give their results; deep ones trap cleanly.
fn check_calls(c: &mut Instance) {
    for export in ["direct", "indirect"] {
        assert_eq!(
            call(c, export, &[Val::I32(50)]),
            Outcome::Finished(vec![Val::I32(50)]),
            "{export}"
        );
        assert_eq!(
            call(c, export, &[Val::I32(1_000_000)]),
            Outcome::Trapped(TrapKind::StackOverflow),
            "{export}"
        );
    }
}

#[test]
fn calls_into_a_linked_instance_are_checked_against_the_running_stack() {
    let (pm, cm) = modules();
    // The provider below the consumer.
    let region = region_with(3, 65536);
    let p = Instance::instantiate(&region, &pm).unwrap();
    let mut c = consumer(&region, &cm, &p, || {});
    check_calls(&mut c);
    // The provider's own calls still use its own stack.
    let mut p = p;
    assert_eq!(
        call(&mut p, "deep", &[Val::I32(50)]),
        Outcome::Finished(vec![Val::I32(50)])
    );
    assert_eq!(
        call(&mut p, "deep", &[Val::I32(1_000_000)]),
        Outcome::Trapped(TrapKind::StackOverflow)
    );
    drop((c, p));

    // The consumer below the provider: a placeholder takes the first
    // slot and leaves before the consumer comes.
    let region = region_with(3, 65536);
    let placeholder = Instance::instantiate(&region, &pm).unwrap();
    let p = Instance::instantiate(&region, &pm).unwrap();
    drop(placeholder);
    let mut c = consumer(&region, &cm, &p, || {});
    check_calls(&mut c);
}

#[test]
fn a_member_run_from_a_host_function_leaves_the_group_on_its_caller() {
    let (pm, cm) = modules();
    for order in 0..2 {
        let region = region_with(4, 65536);
        let placeholder = (order == 1).then(|| Instance::instantiate(&region, &pm).unwrap());
        let p = Instance::instantiate(&region, &pm).unwrap();
        // A second consumer of the same group, run to completion (once
        // shallow, once trapping) inside the first one's host call.
        let inner = Arc::new(Mutex::new(consumer(&region, &cm, &p, || {})));
        drop(placeholder);
        let inner2 = inner.clone();
        let ran = Arc::new(AtomicU32::new(0));
        let ran2 = ran.clone();
        let mut outer = consumer(&region, &cm, &p, move || {
            let mut q = inner2.lock().unwrap();
            assert_eq!(
                call(&mut q, "direct", &[Val::I32(20)]),
                Outcome::Finished(vec![Val::I32(20)])
            );
            assert_eq!(
                call(&mut q, "indirect", &[Val::I32(1_000_000)]),
                Outcome::Trapped(TrapKind::StackOverflow)
            );
            ran2.fetch_add(1, Ordering::Relaxed);
        });
        // After the host call the provider's code runs on the outer
        // consumer's stack again, checked against it.
        assert_eq!(
            call(&mut outer, "nest", &[Val::I32(30)]),
            Outcome::Finished(vec![Val::I32(60)])
        );
        assert_eq!(
            call(&mut outer, "nest", &[Val::I32(1_000_000)]),
            Outcome::Trapped(TrapKind::StackOverflow)
        );
        assert_eq!(ran.load(Ordering::Relaxed), 2);
        check_calls(&mut outer);
        check_calls(&mut inner.lock().unwrap());
    }
}

#[test]
fn another_thread_waits_while_a_group_runs() {
    let (pm, cm) = modules();
    let region = region_with(3, 65536);
    let p = Instance::instantiate(&region, &pm).unwrap();
    let inside = Arc::new(AtomicBool::new(false));
    let overlapped = Arc::new(AtomicBool::new(false));
    let (i2, o2) = (inside.clone(), overlapped.clone());
    // The first consumer stays inside its host call for a while.
    let mut slow = slow_consumer(&region, &cm, &p, &inside);
    // The second one notes whether it ran while the first was inside.
    let mut other = consumer(&region, &cm, &p, move || {
        if i2.load(Ordering::SeqCst) {
            o2.store(true, Ordering::SeqCst);
        }
    });
    let inside3 = inside.clone();
    let t = std::thread::spawn(move || {
        while !inside3.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        call(&mut other, "nest", &[Val::I32(10)])
    });
    assert_eq!(
        call(&mut slow, "nest", &[Val::I32(10)]),
        Outcome::Finished(vec![Val::I32(20)])
    );
    assert_eq!(t.join().unwrap(), Outcome::Finished(vec![Val::I32(20)]));
    assert!(
        !overlapped.load(Ordering::SeqCst),
        "a second thread ran the group's code while the first did"
    );
}

#[test]
fn an_instantiation_linking_to_a_running_group_waits_for_it() {
    let (pm, cm) = modules();
    let region = region_with(4, 65536);
    let p = Instance::instantiate(&region, &pm).unwrap();
    let inside = Arc::new(AtomicBool::new(false));
    let mut slow = slow_consumer(&region, &cm, &p, &inside);
    // Its element segment stores its function into the provider's table:
    // from then on the running consumer could call it, so it may not be
    // made while that runs.
    let writer = compile_wat(
        r#"(module
             (import "p" "tab" (table 1 funcref))
             (elem (i32.const 0) $f)
             (func $f (param i32) (result i32) (local.get 0)))"#,
        &CompileConfig::default(),
    );
    let tab = p.export("tab").unwrap();
    let (inside2, region2) = (inside.clone(), region.clone());
    let t = std::thread::spawn(move || {
        while !inside2.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let mut linker = Linker::new();
        linker.define("p", "tab", tab);
        let w = linker
            .instantiate(&region2, &writer, None)
            .expect("instantiate");
        (w, inside2.load(Ordering::SeqCst))
    });
    assert_eq!(
        call(&mut slow, "nest", &[Val::I32(10)]),
        Outcome::Finished(vec![Val::I32(20)])
    );
    let (w, was_inside) = t.join().unwrap();
    assert!(!was_inside, "instantiated while the group ran");
    // The table now holds the writer's identity function.
    assert_eq!(
        call(&mut slow, "indirect", &[Val::I32(7)]),
        Outcome::Finished(vec![Val::I32(7)])
    );
    drop(w);
}

#[test]
fn an_instance_made_inside_a_running_group_follows_it_and_two_running_groups_do_not_merge() {
    let (pm, cm) = modules();
    let region = region_with(8, 65536);
    let p = Instance::instantiate(&region, &pm).unwrap();
    let q = Instance::instantiate(&region, &pm).unwrap();
    let p_deep = p.export("deep").unwrap();
    let q_deep = q.export("deep").unwrap();
    let linked_to_p = compile_wat(
        r#"(module
             (import "p" "deep" (func $deep (param i32) (result i32)))
             (func (export "direct") (param i32) (result i32) (call $deep (local.get 0))))"#,
        &CompileConfig::default(),
    );
    let linked_to_both = compile_wat(
        r#"(module
             (import "p" "deep" (func (param i32) (result i32)))
             (import "q" "deep" (func (param i32) (result i32))))"#,
        &CompileConfig::default(),
    );
    let results = Arc::new(Mutex::new(Vec::new()));
    // Inside a call of q's group: a host function that tries to link both
    // groups while both run.
    let (r1, region1, pd1, qd1) = (
        results.clone(),
        region.clone(),
        p_deep.clone(),
        q_deep.clone(),
    );
    let q_side = Arc::new(Mutex::new(consumer(&region, &cm, &q, move || {
        let mut linker = Linker::new();
        linker.define("p", "deep", pd1.clone());
        linker.define("q", "deep", qd1.clone());
        let e = linker.instantiate(&region1, &linked_to_both, None).err();
        r1.lock().unwrap().push(format!("{e:?}"));
    })));
    // Inside a call of p's group: make an instance linked to it, run it
    // (shallow and deep), then run q's group too.
    let (r2, region2, pd2, qs) = (
        results.clone(),
        region.clone(),
        p_deep.clone(),
        q_side.clone(),
    );
    let mut p_side = consumer(&region, &cm, &p, move || {
        let mut linker = Linker::new();
        linker.define("p", "deep", pd2.clone());
        let mut z = linker
            .instantiate(&region2, &linked_to_p, None)
            .expect("link to the running group");
        let shallow = call(&mut z, "direct", &[Val::I32(5)]);
        r2.lock().unwrap().push(format!("{shallow:?}"));
        let deep = call(&mut z, "direct", &[Val::I32(1_000_000)]);
        r2.lock().unwrap().push(format!("{deep:?}"));
        // (The results lock is not held meanwhile: q's host function
        // takes it.)
        let nested = call(&mut qs.lock().unwrap(), "nest", &[Val::I32(3)]);
        r2.lock().unwrap().push(format!("{nested:?}"));
    });
    assert_eq!(
        call(&mut p_side, "nest", &[Val::I32(4)]),
        Outcome::Finished(vec![Val::I32(8)])
    );
    let results = results.lock().unwrap().clone();
    assert_eq!(
        results,
        vec![
            format!("{:?}", Outcome::Finished(vec![Val::I32(5)])),
            format!("{:?}", Outcome::Trapped(TrapKind::StackOverflow)),
            format!(
                "{:?}",
                Some(LinkError::Instantiate(
                    InstantiateError::LinkedGroupsRunning
                ))
            ),
            format!("{:?}", Outcome::Finished(vec![Val::I32(6)])),
        ]
    );
    check_calls(&mut p_side);
    check_calls(&mut q_side.lock().unwrap());
}

/// Imports a function of q's group FIRST, then p's table; its element
/// segment stores its own recursive function (same body as the
/// provider's `deep`) into p's table.
const WRITER_BOTH: &str = r#"(module
  (import "q" "deep" (func (param i32) (result i32)))
  (import "p" "tab" (table 1 funcref))
  (elem (i32.const 0) $rec)
  (func $rec (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $rec (i32.sub (local.get 0) (i32.const 1))))))))"#;

const VICTIM: &str = r#"(module (memory (export "mem") 1))"#;

/// Largest `deep(n)` that finishes on an instance's own 16 KiB stack.
fn max_depth(region: &Arc<myriad_runtime::Region>, pm: &Arc<myriad_runtime::Module>) -> i32 {
    let mut p = Instance::instantiate(region, pm).unwrap();
    let (mut lo, mut hi) = (1i32, 100_000i32);
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        match call(&mut p, "deep", &[Val::I32(mid)]) {
            Outcome::Finished(_) => lo = mid,
            _ => hi = mid,
        }
    }
    lo
}

/// Found by review: a refused link (`LinkedGroupsRunning`) used to come
/// after the element segments had stored the new instance's function in
/// a table of the other group, whose green threads then ran it checked
/// against the wrong stack's limit (4,846 bytes of the next slot's heap
/// overwritten, or `SIGSEGV`). The link is now decided first.
#[test]
fn a_refused_link_stores_nothing_of_the_instance_in_the_other_group() {
    let pm = compile_wat(PROVIDER, &CompileConfig::default());
    let cm = compile_wat(CONSUMER, &CompileConfig::default());
    let wm = compile_wat(WRITER_BOTH, &CompileConfig::default());
    let vm = compile_wat(VICTIM, &CompileConfig::default());
    let region = region_with(10, 65536);
    let depth = max_depth(&region, &pm);
    // Slot plan: 0 = writer (placeholder first), 1 = victim,
    // 2 = p_side (placeholder first), 3.. = p, q, q_side.
    let ph0 = Instance::instantiate(&region, &vm).unwrap();
    let victim = Instance::instantiate(&region, &vm).unwrap();
    let ph2 = Instance::instantiate(&region, &vm).unwrap();
    let p = Instance::instantiate(&region, &pm).unwrap();
    let q = Instance::instantiate(&region, &pm).unwrap();
    let q_deep = q.export("deep").unwrap();
    let p_tab = p.export("tab").unwrap();
    let err = Arc::new(Mutex::new(None));
    let writer_slot = Arc::new(Mutex::new(None));
    let (e1, r1, ws) = (err.clone(), region.clone(), writer_slot.clone());
    let ph0 = Mutex::new(Some(ph0));
    let q_side = Arc::new(Mutex::new(consumer(&region, &cm, &q, move || {
        // Free slot 0 for the writer.
        drop(ph0.lock().unwrap().take());
        let mut linker = Linker::new();
        linker.define("q", "deep", q_deep.clone());
        linker.define("p", "tab", p_tab.clone());
        let r = linker.instantiate(&r1, &wm, None);
        *ws.lock().unwrap() = r.as_ref().ok().map(|i| i.slot());
        *e1.lock().unwrap() = Some(format!("{:?}", r.err()));
    })));
    drop(ph2);
    let qs = q_side.clone();
    let mut p_side = consumer(&region, &cm, &p, move || {
        let _ = call(&mut qs.lock().unwrap(), "nest", &[Val::I32(3)]);
    });
    assert_eq!(victim.slot(), 1);
    assert_eq!(p_side.slot(), 2);
    // p_side -> host -> q_side -> host -> instantiate the writer.
    let nest = call(&mut p_side, "nest", &[Val::I32(4)]);
    eprintln!("nest: {nest:?}");
    eprintln!("writer instantiation: {:?}", err.lock().unwrap());
    assert_eq!(
        err.lock().unwrap().as_deref(),
        Some(
            format!(
                "{:?}",
                Some(LinkError::Instantiate(
                    InstantiateError::LinkedGroupsRunning
                ))
            )
            .as_str()
        )
    );
    // p's table[0] is now the failed writer's $rec (slot 0). Recursion
    // about 1.5 times what fits p_side's stack: a correct runtime traps
    // with StackOverflow; here the check is against slot 0's limit.
    assert!(victim.memory().iter().all(|b| *b == 0));
    let attack = depth + depth / 2;
    let out = call(&mut p_side, "indirect", &[Val::I32(attack)]);
    eprintln!("indirect({attack}) with max own depth {depth}: {out:?}");
    let dirty = victim.memory().iter().filter(|b| **b != 0).count();
    eprintln!("victim (slot 1) heap bytes overwritten: {dirty}");
    assert_eq!(
        out,
        Outcome::Trapped(myriad_runtime::TrapKind::StackOverflow)
    );
    assert_eq!(dirty, 0, "another tenant's heap was overwritten");
}

/// Found by review: a host-made table belongs to no group until an
/// instance imports it, and an instantiation importing it used to hold
/// nothing, so another thread could make an instance importing the same
/// table and call the first one's function (stored by its element
/// segment) while its data segments were still copied: checked against
/// the wrong stack's limit (`StackOverflow` at once in this slot order).
/// The table joins the new instance's held group before anything else.
#[test]
fn a_table_without_a_group_is_held_while_an_instance_stores_into_it() {
    const SLOW_WRITER_HEAD: &str = r#"(module
      (import "env" "tab" (table 1 funcref))
      (elem (i32.const 0) $f)
      (memory 160)
      (func $f (param i32) (result i32) (local.get 0))
      (data (i32.const 0) ""#;
    // 8 MiB of data: a few milliseconds of copying after the element
    // segment is applied.
    let wat = format!("{SLOW_WRITER_HEAD}{}\"))", "a".repeat(8 << 20));
    let writer = compile_wat(&wat, &CompileConfig::default());
    let reader = compile_wat(
        r#"(module
          (import "env" "tab" (table 1 funcref))
          (type $t (func (param i32) (result i32)))
          (func (export "go") (param i32) (result i32)
            (call_indirect (type $t) (local.get 0) (i32.const 0))))"#,
        &CompileConfig::default(),
    );
    let region = Arc::new(
        myriad_runtime::Region::new(myriad_runtime::RegionConfig {
            slots: 4,
            stack_size: 16 * 1024,
            heap_capacity: 16 << 20,
            guard_size: 0,
            guard_mode: false,
            heap_reservation: 0,
        })
        .unwrap(),
    );
    let tab = myriad_runtime::Table::new(myriad_runtime::ValType::FuncRef, 1, None);
    let vm = compile_wat(VICTIM, &CompileConfig::default());
    // Slot 0 is freed on the reader's thread just before the reader is
    // made there: the reader's stack lies below the writer's.
    let ph = Instance::instantiate(&region, &vm).unwrap();
    assert_eq!(ph.slot(), 0);
    let (tab2, region2) = (tab.clone(), region.clone());
    let t = std::thread::spawn(move || {
        // Wait for the writer's element segment.
        while tab2.get(0) == Some(0) {
            std::hint::spin_loop();
        }
        drop(ph);
        let mut linker = Linker::new();
        linker.define("env", "tab", myriad_runtime::Extern::Table(tab2.clone()));
        let mut r = linker.instantiate(&region2, &reader, None).unwrap();
        let slot = r.slot();
        (call(&mut r, "go", &[Val::I32(5)]), slot)
    });
    let mut linker = Linker::new();
    linker.define("env", "tab", myriad_runtime::Extern::Table(tab.clone()));
    let w = linker.instantiate(&region, &writer, None).unwrap();
    let (out, reader_slot) = t.join().unwrap();
    eprintln!(
        "writer slot {}, reader slot {reader_slot}: reader's call: {out:?}",
        w.slot()
    );
    assert_eq!(out, Outcome::Finished(vec![Val::I32(5)]));
}

/// Found by review: after such a refused link the failed instance lived
/// only in one group while its function reference sat in the other's
/// table; when the first group died its slot was reused and the table
/// still pointed into it (`SIGSEGV`).
#[test]
fn a_refused_link_leaves_no_reference_to_a_freed_slot() {
    const WRITER_READS: &str = r#"(module
      (import "q" "deep" (func (param i32) (result i32)))
      (import "p" "tab" (table 1 funcref))
      (memory 1)
      (elem (i32.const 0) $rd)
      (func $rd (param i32) (result i32) (i32.load (local.get 0))))"#;
    const SECRET: &str = r#"(module (memory 1) (data (i32.const 0) "\2a\2a\2a\2a"))"#;
    let pm = compile_wat(PROVIDER, &CompileConfig::default());
    let cm = compile_wat(CONSUMER, &CompileConfig::default());
    let wm = compile_wat(WRITER_READS, &CompileConfig::default());
    let sm = compile_wat(SECRET, &CompileConfig::default());
    let region = region_with(10, 65536);
    let p = Instance::instantiate(&region, &pm).unwrap();
    let q = Instance::instantiate(&region, &pm).unwrap();
    let q_deep = Arc::new(Mutex::new(Some(q.export("deep").unwrap())));
    let p_tab = Arc::new(Mutex::new(Some(p.export("tab").unwrap())));
    let err = Arc::new(Mutex::new(None));
    let (e1, r1, qd, pt) = (err.clone(), region.clone(), q_deep.clone(), p_tab.clone());
    let q_side = Arc::new(Mutex::new(Some(consumer(&region, &cm, &q, move || {
        let mut linker = Linker::new();
        linker.define("q", "deep", qd.lock().unwrap().take().unwrap());
        linker.define("p", "tab", pt.lock().unwrap().take().unwrap());
        let r = linker.instantiate(&r1, &wm, None);
        *e1.lock().unwrap() = Some(format!("{:?}", r.err()));
    }))));
    let qs = q_side.clone();
    let mut p_side = consumer(&region, &cm, &p, move || {
        if let Some(q) = qs.lock().unwrap().as_mut() {
            let _ = call(q, "nest", &[Val::I32(0)]);
        }
    });
    let nest = call(&mut p_side, "nest", &[Val::I32(0)]);
    eprintln!("nest: {nest:?}; writer: {:?}", err.lock().unwrap());
    // q's group dies: q, the consumer of q (and the failed writer in it).
    drop(q);
    drop(q_side.lock().unwrap().take());
    // A new tenant takes the freed slot.
    let secret = Instance::instantiate(&region, &sm).unwrap();
    eprintln!("secret tenant in slot {}", secret.slot());
    let out = call(&mut p_side, "indirect", &[Val::I32(0)]);
    eprintln!("p_side indirect through the stale table entry: {out:?}");
    assert_ne!(
        out,
        Outcome::Finished(vec![Val::I32(0x2a2a2a2a)]),
        "read another tenant's memory"
    );
}

/// Found by review: two host functions on two threads, each resuming a
/// member of the other's running group, waited for each other forever.
/// The second to wait sees the cycle: its resume ends the armed call with
/// a host trap without running it, and the other thread goes on. The
/// refused instance can be called again.
#[test]
fn cross_group_resumes_from_two_threads_do_not_deadlock() {
    let (pm, cm) = modules();
    let region = region_with(8, 65536);
    let p1 = Instance::instantiate(&region, &pm).unwrap();
    let p2 = Instance::instantiate(&region, &pm).unwrap();
    // Members the host functions resume: one in each group.
    let inner1 = Arc::new(Mutex::new(consumer(&region, &cm, &p1, || {})));
    let inner2 = Arc::new(Mutex::new(consumer(&region, &cm, &p2, || {})));
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let (b1, b2) = (barrier.clone(), barrier.clone());
    let inner_outcomes = Arc::new(Mutex::new(Vec::new()));
    let (o1, o2) = (inner_outcomes.clone(), inner_outcomes.clone());
    let (i2, i1) = (inner2.clone(), inner1.clone());
    let outer1 = consumer(&region, &cm, &p1, move || {
        b1.wait();
        let out = call(&mut i2.lock().unwrap(), "direct", &[Val::I32(1)]);
        o1.lock().unwrap().push(out);
    });
    let outer2 = consumer(&region, &cm, &p2, move || {
        b2.wait();
        let out = call(&mut i1.lock().unwrap(), "direct", &[Val::I32(1)]);
        o2.lock().unwrap().push(out);
    });
    let Some(done) = nest_on_threads(vec![outer1, outer2]) else {
        // Leak what the blocked threads still use, then fail.
        std::mem::forget((p1, p2, inner1, inner2, region));
        panic!("deadlock");
    };
    assert_eq!(done, vec![Outcome::Finished(vec![Val::I32(2)]); 2]);
    let mut inner = inner_outcomes.lock().unwrap().clone();
    inner.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        inner,
        vec![
            Outcome::Finished(vec![Val::I32(1)]),
            Outcome::Trapped(TrapKind::HostTrap)
        ]
    );
    for i in [&inner1, &inner2] {
        assert_eq!(
            call(&mut i.lock().unwrap(), "direct", &[Val::I32(5)]),
            Outcome::Finished(vec![Val::I32(5)])
        );
    }
}

/// Found by review: the same with instantiations linked to the other's
/// group. The second to wait is refused with `LinkWouldDeadlock`.
#[test]
fn cross_group_instantiations_from_two_threads_do_not_deadlock() {
    let (pm, cm) = modules();
    let region = region_with(8, 65536);
    let p1 = Instance::instantiate(&region, &pm).unwrap();
    let p2 = Instance::instantiate(&region, &pm).unwrap();
    let linked = compile_wat(
        r#"(module (import "p" "deep" (func (param i32) (result i32))))"#,
        &CompileConfig::default(),
    );
    let (d1, d2) = (p1.export("deep").unwrap(), p2.export("deep").unwrap());
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let (b1, b2) = (barrier.clone(), barrier.clone());
    let results = Arc::new(Mutex::new(Vec::new()));
    let (res1, res2) = (results.clone(), results.clone());
    let (r1, r2, l1, l2) = (
        region.clone(),
        region.clone(),
        linked.clone(),
        linked.clone(),
    );
    let outer1 = consumer(&region, &cm, &p1, move || {
        b1.wait();
        let mut lk = Linker::new();
        lk.define("p", "deep", d2.clone());
        let r = lk.instantiate(&r1, &l1, None).map(drop);
        res1.lock().unwrap().push(format!("{r:?}"));
    });
    let outer2 = consumer(&region, &cm, &p2, move || {
        b2.wait();
        let mut lk = Linker::new();
        lk.define("p", "deep", d1.clone());
        let r = lk.instantiate(&r2, &l2, None).map(drop);
        res2.lock().unwrap().push(format!("{r:?}"));
    });
    let Some(done) = nest_on_threads(vec![outer1, outer2]) else {
        std::mem::forget((p1, p2, region));
        panic!("deadlock");
    };
    assert_eq!(
        done,
        vec![Outcome::Finished(vec![Val::I32(2)]); 2],
        "both calls finish"
    );
    let mut results = results.lock().unwrap().clone();
    results.sort();
    assert_eq!(
        results,
        vec![
            format!(
                "{:?}",
                Err::<(), _>(LinkError::Instantiate(InstantiateError::LinkWouldDeadlock))
            ),
            "Ok(())".to_string(),
        ]
    );
}

/// Found by review: an instantiation waiting for several busy groups was
/// registered as waiting for the first only, so a cycle through another
/// one went unseen until the first was released. Thread C links to A
/// (whose thread stays 2 s in a host call) and B; B's thread then resumes
/// a member of C's group: a cycle between C and B, seen at once.
#[test]
fn a_cycle_through_any_group_an_instantiation_waits_for_is_seen_at_once() {
    let (pm, cm) = modules();
    let region = region_with(16, 65536);
    let pa = Instance::instantiate(&region, &pm).unwrap();
    let pb = Instance::instantiate(&region, &pm).unwrap();
    let pc = Instance::instantiate(&region, &pm).unwrap();
    let linked = compile_wat(
        r#"(module (import "x" "deep" (func (param i32) (result i32)))
                   (import "y" "deep" (func (param i32) (result i32))))"#,
        &CompileConfig::default(),
    );
    let (da, db) = (pa.export("deep").unwrap(), pb.export("deep").unwrap());
    let inner_c = Arc::new(Mutex::new(consumer(&region, &cm, &pc, || {})));
    let (in_a, in_b, c_linking) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let start = std::time::Instant::now();
    let resolved = Arc::new(Mutex::new(Vec::new()));
    let in_a1 = in_a.clone();
    let outer_a = consumer(&region, &cm, &pa, move || {
        in_a1.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(2));
    });
    let (in_b1, cl1, res1, ic) = (
        in_b.clone(),
        c_linking.clone(),
        resolved.clone(),
        inner_c.clone(),
    );
    let outer_b = consumer(&region, &cm, &pb, move || {
        in_b1.store(true, Ordering::SeqCst);
        while !cl1.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // Let C's thread reach its wait.
        std::thread::sleep(Duration::from_millis(100));
        let out = call(&mut ic.lock().unwrap(), "direct", &[Val::I32(1)]);
        res1.lock()
            .unwrap()
            .push((format!("{out:?}"), start.elapsed()));
    });
    let (in_a2, in_b2, cl2, res2, r2) = (in_a, in_b, c_linking, resolved.clone(), region.clone());
    let outer_c = consumer(&region, &cm, &pc, move || {
        while !(in_a2.load(Ordering::SeqCst) && in_b2.load(Ordering::SeqCst)) {
            std::thread::yield_now();
        }
        let mut lk = Linker::new();
        lk.define("x", "deep", da.clone());
        lk.define("y", "deep", db.clone());
        cl2.store(true, Ordering::SeqCst);
        let r = lk.instantiate(&r2, &linked, None).map(drop);
        res2.lock()
            .unwrap()
            .push((format!("{r:?}"), start.elapsed()));
    });
    let Some(_) = nest_on_threads(vec![outer_a, outer_b, outer_c]) else {
        std::mem::forget((pa, pb, pc, inner_c, region));
        panic!("deadlock");
    };
    let resolved = resolved.lock().unwrap().clone();
    // The first to settle is refused (whichever of the two saw the cycle
    // close), long before A's thread leaves its 2 s host call.
    let (first, at) = &resolved[0];
    assert!(
        first.contains("LinkWouldDeadlock") || first.contains("HostTrap"),
        "{resolved:?}"
    );
    assert!(*at < Duration::from_millis(1500), "{resolved:?}");
}

/// Found by review: a resume refused as a deadlock after the start
/// function had run made it pending again, and the next call ran it a
/// second time. The refused call (in progress: suspended in a yielding
/// host call) ends as a host trap; the start function ran once.
#[test]
fn a_refused_resume_of_a_call_in_progress_ends_it_without_a_second_start() {
    const S: &str = r#"(module
      (import "p" "deep" (func $deep (param i32) (result i32)))
      (import "env" "y" (func $y))
      (global $n (mut i32) (i32.const 0))
      (func $start (global.set $n (i32.add (global.get $n) (i32.const 1))))
      (start $start)
      (func (export "work") (result i32) (call $y) (call $deep (i32.const 1)))
      (func (export "count") (result i32) (global.get $n)))"#;
    let (pm, cm) = modules();
    let sm = compile_wat(S, &CompileConfig::default());
    let region = region_with(8, 65536);
    let p1 = Instance::instantiate(&region, &pm).unwrap();
    let p2 = Instance::instantiate(&region, &pm).unwrap();
    let mk = |p: &Instance| {
        let mut linker = Linker::new();
        linker.instance("p", p);
        linker.func_wrap(
            "env",
            "y",
            |_: &mut Caller<'_>| -> Result<(), myriad_runtime::HostAction> {
                Err(myriad_runtime::HostAction::Yield)
            },
        );
        let mut s = linker.instantiate(&region, &sm, None).unwrap();
        s.call("work", &[]).unwrap();
        let now = myriad_runtime::rdtsc();
        assert_eq!(s.resume(now + 2_000_000_000), Outcome::Yielded);
        Arc::new(Mutex::new(s))
    };
    let (inner1, inner2) = (mk(&p1), mk(&p2));
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let (b1, b2) = (barrier.clone(), barrier.clone());
    let outs = Arc::new(Mutex::new(Vec::new()));
    let (o1, o2) = (outs.clone(), outs.clone());
    let (i2, i1) = (inner2.clone(), inner1.clone());
    let outer1 = consumer(&region, &cm, &p1, move || {
        b1.wait();
        let now = myriad_runtime::rdtsc();
        let out = i2.lock().unwrap().resume(now + 2_000_000_000);
        o1.lock().unwrap().push(out);
    });
    let outer2 = consumer(&region, &cm, &p2, move || {
        b2.wait();
        let now = myriad_runtime::rdtsc();
        let out = i1.lock().unwrap().resume(now + 2_000_000_000);
        o2.lock().unwrap().push(out);
    });
    let Some(_) = nest_on_threads(vec![outer1, outer2]) else {
        std::mem::forget((p1, p2, inner1, inner2, region));
        panic!("deadlock");
    };
    let mut outs = outs.lock().unwrap().clone();
    outs.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outs,
        vec![
            Outcome::Finished(vec![Val::I32(1)]),
            Outcome::Trapped(TrapKind::HostTrap)
        ]
    );
    for i in [&inner1, &inner2] {
        assert_eq!(
            call(&mut i.lock().unwrap(), "count", &[]),
            Outcome::Finished(vec![Val::I32(1)]),
            "start ran again"
        );
    }
}
