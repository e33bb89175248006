//! Actors: guest spawn, monitors, links, trap_exit, names and receive
//! timeouts, through the `myriad` host functions and the embedding API,
//! including the races the design must survive.

mod common;
use common::module;

use myriad_runtime::{Linker, Module, TrapKind, Val};
use myriad_scheduler::{
    messaging, ActorError, ExitReason, InstanceError, InstanceState, MessageKind, Scheduler,
    SchedulerConfig, SpawnOptions, SystemMessage, RECV_TIMEOUT,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ACTORS: &str = r#"(module
  (import "myriad" "spawn" (func $spawn (param i32 i32 i32 i32 i32) (result i64)))
  (import "myriad" "spawn_module" (func $spawn_module (param i32 i32 i32 i32 i32) (result i64)))
  (import "myriad" "monitor" (func $monitor (param i64) (result i32)))
  (import "myriad" "demonitor" (func $demonitor (param i64) (result i32)))
  (import "myriad" "link" (func $link (param i64) (result i32)))
  (import "myriad" "unlink" (func $unlink (param i64) (result i32)))
  (import "myriad" "trap_exit" (func $trap_exit (param i32) (result i32)))
  (import "myriad" "recv_msg" (func $recv_msg (param i32 i32 i64) (result i64)))
  (import "myriad" "send" (func $send (param i64 i32 i32) (result i32)))
  (import "myriad" "self" (func $self (result i64)))
  (import "myriad" "register" (func $register (param i32 i32) (result i32)))
  (import "myriad" "unregister" (func $unregister (param i32 i32) (result i32)))
  (import "myriad" "whereis" (func $whereis (param i32 i32) (result i64)))
  (import "myriad" "exit" (func $exit (param i32)))
  (memory 1)
  (data (i32.const 256) "trap")
  (data (i32.const 264) "finish42")
  (data (i32.const 272) "exit7")
  (data (i32.const 280) "waiter")
  (data (i32.const 288) "add_send")
  (data (i32.const 296) "chain")
  (data (i32.const 304) "counter")
  (data (i32.const 320) "other\00finish42")
  (data (i32.const 340) "nobody\00finish42")

  (func (export "trap") unreachable)
  (func (export "finish42") (result i64) (i64.const 42))
  (func (export "exit7") (call $exit (i32.const 7)))
  (func (export "waiter") (result i64)
    (call $recv_msg (i32.const 0) (i32.const 64) (i64.const -1)))
  (func (export "waiter_reason") (result i64 i64)
    (call $recv_msg (i32.const 0) (i32.const 64) (i64.const -1))
    (i64.load32_u (i32.const 4)))
  (func (export "add_send") (param $to i64) (param $a i64) (param $b i64)
    (i64.store (i32.const 0) (i64.add (local.get $a) (local.get $b)))
    (drop (call $send (local.get $to) (i32.const 0) (i32.const 8))))

  ;; spawn add_send(self, a, b) and receive the sum
  (func (export "spawn_add") (param $a i64) (param $b i64) (result i64 i64)
    (i64.store (i32.const 64) (call $self))
    (i64.store (i32.const 72) (local.get $a))
    (i64.store (i32.const 80) (local.get $b))
    (drop (call $spawn (i32.const 288) (i32.const 8) (i32.const 64) (i32.const 3) (i32.const 0)))
    (call $recv_msg (i32.const 0) (i32.const 64) (i64.const -1))
    (i64.load (i32.const 0)))

  ;; trap_exit(te); spawn the export at (ep, el) with `flags`; receive one
  ;; message: (tagged result, reason, sender is the child, detail)
  (func (export "watch") (param $ep i32) (param $el i32) (param $flags i32) (param $te i32)
    (result i64 i64 i64 i64)
    (local $child i64)
    (drop (call $trap_exit (local.get $te)))
    (local.set $child
      (call $spawn (local.get $ep) (local.get $el) (i32.const 64) (i32.const 0) (local.get $flags)))
    (call $recv_msg (i32.const 0) (i32.const 64) (i64.const 5000000000))
    (i64.load32_u (i32.const 4))
    (i64.extend_i32_u (i64.eq (i64.load (i32.const 8)) (local.get $child)))
    (i64.load (i32.const 16)))

  ;; spawn `trap` linked, then wait for ever: the link ends this instance
  (func (export "linked_wait") (result i64)
    (drop (call $spawn (i32.const 256) (i32.const 4) (i32.const 64) (i32.const 0) (i32.const 2)))
    (call $recv_msg (i32.const 0) (i32.const 64) (i64.const -1)))

  ;; spawn `finish42` linked, then wait 50 ms: a normal end does not kill
  (func (export "linked_normal") (result i64)
    (drop (call $spawn (i32.const 264) (i32.const 8) (i32.const 64) (i32.const 0) (i32.const 2)))
    (call $recv_msg (i32.const 0) (i32.const 64) (i64.const 50000000)))

  (func (export "recv_timeout") (param $ns i64) (result i64)
    (call $recv_msg (i32.const 0) (i32.const 64) (local.get $ns)))

  ;; monitor `id`: (code, tagged result of a 100 ms receive, reason)
  (func (export "monitor_id") (param $id i64) (result i32 i64 i64)
    (call $monitor (local.get $id))
    (call $recv_msg (i32.const 0) (i32.const 64) (i64.const 100000000))
    (i64.load32_u (i32.const 4)))

  (func (export "link_id") (param $id i64) (result i32) (call $link (local.get $id)))
  (func (export "demonitor_id") (param $id i64) (result i32) (call $demonitor (local.get $id)))
  (func (export "unlink_id") (param $id i64) (result i32) (call $unlink (local.get $id)))

  ;; n times: spawn `finish42` unrelated and monitor it at once; then
  ;; receive every down message: (monitors set, downs received)
  (func (export "race_monitor") (param $n i32) (result i32 i32)
    (local $i i32) (local $set i32) (local $got i32) (local $r i64)
    (loop $l
      (if (i32.eqz (call $monitor
            (call $spawn (i32.const 264) (i32.const 8) (i32.const 64) (i32.const 0) (i32.const 0))))
        (then (local.set $set (i32.add (local.get $set) (i32.const 1)))))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
    (block $done
      (loop $l
        (local.set $r (call $recv_msg (i32.const 0) (i32.const 64) (i64.const 200000000)))
        (br_if $done (i64.ne (i64.shr_u (local.get $r) (i64.const 32)) (i64.const 1)))
        (local.set $got (i32.add (local.get $got) (i32.const 1)))
        (br $l)))
    (local.get $set) (local.get $got))

  ;; trap_exit on; n times: spawn `trap` unrelated and link it at once;
  ;; then count exit messages: (links made, already ended, exits received)
  (func (export "race_link") (param $n i32) (result i32 i32 i32)
    (local $i i32) (local $made i32) (local $ended i32) (local $got i32) (local $code i32)
    (drop (call $trap_exit (i32.const 1)))
    (loop $l
      (local.set $code (call $link
        (call $spawn (i32.const 256) (i32.const 4) (i32.const 64) (i32.const 0) (i32.const 0))))
      (if (i32.eqz (local.get $code)) (then (local.set $made (i32.add (local.get $made) (i32.const 1)))))
      (if (i32.eq (local.get $code) (i32.const -3))
        (then (local.set $ended (i32.add (local.get $ended) (i32.const 1)))))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
    (block $done
      (loop $l
        (br_if $done (i64.ne
          (i64.shr_u (call $recv_msg (i32.const 0) (i32.const 64) (i64.const 200000000)) (i64.const 32))
          (i64.const 2)))
        (local.set $got (i32.add (local.get $got) (i32.const 1)))
        (br $l)))
    (local.get $made) (local.get $ended) (local.get $got))

  ;; spawn `waiter` n times: (spawned, at-capacity answers, other answers)
  (func (export "storm") (param $n i32) (result i32 i32 i32)
    (local $i i32) (local $ok i32) (local $full i32) (local $other i32) (local $r i64)
    (loop $l
      (local.set $r (call $spawn (i32.const 280) (i32.const 6) (i32.const 64) (i32.const 0) (i32.const 0)))
      (if (i64.gt_s (local.get $r) (i64.const 0))
        (then (local.set $ok (i32.add (local.get $ok) (i32.const 1))))
        (else (if (i64.eq (local.get $r) (i64.const -1))
          (then (local.set $full (i32.add (local.get $full) (i32.const 1))))
          (else (local.set $other (i32.add (local.get $other) (i32.const 1)))))))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
    (local.get $ok) (local.get $full) (local.get $other))

  ;; a chain of n linked instances; the last one traps
  (func (export "chain") (param $n i64) (result i64)
    (if (i64.eqz (local.get $n)) (then unreachable))
    (i64.store (i32.const 64) (i64.sub (local.get $n) (i64.const 1)))
    (drop (call $spawn (i32.const 296) (i32.const 5) (i32.const 64) (i32.const 1) (i32.const 2)))
    (call $recv_msg (i32.const 0) (i32.const 64) (i64.const -1)))

  ;; register "counter", then wait for one message
  (func (export "named") (result i32 i64)
    (call $register (i32.const 304) (i32.const 7))
    (call $recv_msg (i32.const 0) (i32.const 64) (i64.const -1)))
  (func (export "where") (result i64) (call $whereis (i32.const 304) (i32.const 7)))

  ;; bad inputs, each answered by a code
  (func (export "bad_inputs") (result i64 i64 i64 i64 i64 i64 i32 i32 i32 i32 i32 i64)
    (call $spawn (i32.const 70000) (i32.const 4) (i32.const 64) (i32.const 0) (i32.const 0))
    (call $spawn (i32.const 304) (i32.const 7) (i32.const 64) (i32.const 0) (i32.const 0))
    (call $spawn (i32.const 256) (i32.const 4) (i32.const 64) (i32.const 2) (i32.const 0))
    (call $spawn (i32.const 256) (i32.const 4) (i32.const 64) (i32.const 0) (i32.const 4))
    (call $spawn_module (i32.const 340) (i32.const 15) (i32.const 64) (i32.const 0) (i32.const 0))
    (call $spawn (i32.const 296) (i32.const 5) (i32.const 65530) (i32.const 1) (i32.const 0))
    (call $monitor (i64.const 1000000000))
    (call $monitor (call $self))
    (call $link (call $self))
    (call $register (i32.const 0) (i32.const 65))
    (call $unregister (i32.const 304) (i32.const 7))
    (call $whereis (i32.const 65535) (i32.const 7)))

  ;; learn the peer's id from the first message, then pass every later
  ;; message on to it, for ever
  (func (export "bouncer")
    (local $peer i64)
    (drop (call $recv_msg (i32.const 0) (i32.const 64) (i64.const -1)))
    (local.set $peer (i64.load (i32.const 0)))
    (loop $l
      (drop (call $recv_msg (i32.const 0) (i32.const 64) (i64.const -1)))
      (drop (call $send (local.get $peer) (i32.const 0) (i32.const 8)))
      (br $l)))
  ;; as bouncer, but every receive has a one-hour timeout that the next
  ;; message cuts short
  (func (export "bouncer_timeout")
    (local $peer i64)
    (drop (call $recv_msg (i32.const 0) (i32.const 64) (i64.const -1)))
    (local.set $peer (i64.load (i32.const 0)))
    (loop $l
      (drop (call $recv_msg (i32.const 0) (i32.const 64) (i64.const 3600000000000)))
      (drop (call $send (local.get $peer) (i32.const 0) (i32.const 8)))
      (br $l)))
  (func (export "spin") (param $n i64) (result i64)
    (loop $l
      (br_if $l (i64.ne (local.tee $n (i64.sub (local.get $n) (i64.const 1))) (i64.const 0))))
    (i64.const 1))

  ;; spawn finish42 of the registered module "other", monitored: its down
  ;; message's (reason, detail)
  (func (export "spawn_other") (result i64 i64)
    (drop (call $spawn_module (i32.const 320) (i32.const 14) (i32.const 64) (i32.const 0) (i32.const 1)))
    (drop (call $recv_msg (i32.const 0) (i32.const 64) (i64.const -1)))
    (i64.load32_u (i32.const 4))
    (i64.load (i32.const 16)))
)"#;

fn scheduler(workers: usize, capacity: usize) -> Scheduler {
    Scheduler::new(SchedulerConfig {
        workers,
        capacity,
        quantum: Duration::from_micros(100),
        stack_size: 16 * 1024,
        heap_capacity: 128 * 1024,
        pin_workers: false,
        ..SchedulerConfig::default()
    })
    .expect("scheduler")
}

struct Actors {
    module: Arc<Module>,
    linker: Arc<Linker>,
}

impl Actors {
    fn new() -> Actors {
        let mut linker = Linker::new();
        messaging::add_to_linker(&mut linker);
        Actors {
            module: module(ACTORS),
            linker: Arc::new(linker),
        }
    }

    fn spawn(&self, s: &Scheduler, export: &str, args: &[Val]) -> myriad_scheduler::InstanceHandle {
        s.spawn_with(
            &self.module,
            export,
            args,
            SpawnOptions::new().linker(&self.linker),
        )
        .expect("spawn")
    }

    fn run(&self, s: &Scheduler, export: &str, args: &[Val]) -> Vec<Val> {
        self.spawn(s, export, args).join().expect("finishes")
    }
}

fn i64s(v: &[Val]) -> Vec<i64> {
    v.iter()
        .map(|v| match v {
            Val::I32(x) => i64::from(*x),
            Val::I64(x) => *x,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

/// The `(ptr, len)` of an export name in the guest's data.
fn name(export: &str) -> [Val; 2] {
    let at = match export {
        "trap" => 256,
        "finish42" => 264,
        "exit7" => 272,
        "waiter" => 280,
        other => panic!("no name {other}"),
    };
    [Val::I32(at), Val::I32(export.len() as i32)]
}

fn watch(a: &Actors, s: &Scheduler, export: &str, flags: i32, trap_exit: i32) -> Vec<i64> {
    let [p, l] = name(export);
    i64s(&a.run(s, "watch", &[p, l, Val::I32(flags), Val::I32(trap_exit)]))
}

#[test]
fn a_guest_spawns_a_child_with_arguments_and_hears_from_it() {
    let a = Actors::new();
    let s = scheduler(2, 16);
    let r = i64s(&a.run(&s, "spawn_add", &[Val::I64(40), Val::I64(2)]));
    assert_eq!(r, vec![8, 42], "an 8-byte ordinary message, then the sum");
    assert!(s.wait_idle(Duration::from_secs(5)));
    assert_eq!(s.free_slots(), 16);
}

#[test]
fn monitors_report_how_the_child_ended() {
    let a = Actors::new();
    let s = scheduler(2, 16);
    let down = MessageKind::Down as i64;
    let r = watch(&a, &s, "trap", 1, 0);
    assert_eq!(r[0], down << 32 | 24, "a 24-byte down message");
    assert_eq!(
        r[1..],
        [ExitReason::Trapped as i64, 1, TrapKind::Unreachable as i64]
    );
    let r = watch(&a, &s, "finish42", 1, 0);
    assert_eq!(r, vec![down << 32 | 24, ExitReason::Finished as i64, 1, 42]);
    let r = watch(&a, &s, "exit7", 1, 0);
    assert_eq!(r, vec![down << 32 | 24, ExitReason::Exited as i64, 1, 7]);
}

#[test]
fn links_kill_on_abnormal_ends_unless_exits_are_trapped() {
    let a = Actors::new();
    let s = scheduler(2, 16);
    // trap_exit: the exit arrives as a message, for normal ends too.
    let exit = MessageKind::Exit as i64;
    let r = watch(&a, &s, "trap", 2, 1);
    assert_eq!(
        r,
        vec![
            exit << 32 | 24,
            ExitReason::Trapped as i64,
            1,
            TrapKind::Unreachable as i64
        ]
    );
    let r = watch(&a, &s, "finish42", 2, 1);
    assert_eq!(r, vec![exit << 32 | 24, ExitReason::Finished as i64, 1, 42]);
    // Without it, the trapping child ends the parent.
    let h = a.spawn(&s, "linked_wait", &[]);
    match h.join() {
        Err(InstanceError::Killed(by)) => assert!(by > h.id()),
        other => panic!("expected Killed, got {other:?}"),
    }
    assert_eq!(h.state(), InstanceState::Cancelled);
    // A normal end of a linked child does not.
    let r = i64s(&a.run(&s, "linked_normal", &[]));
    assert_eq!(r, vec![i64::from(RECV_TIMEOUT as u32)]);
    assert!(s.wait_idle(Duration::from_secs(5)));
    assert_eq!(s.free_slots(), 16);
}

#[test]
fn a_chain_of_links_ends_whole_without_deep_recursion() {
    let a = Actors::new();
    let s = scheduler(2, 2100);
    let h = a.spawn(&s, "chain", &[Val::I64(2000)]);
    assert!(matches!(h.join(), Err(InstanceError::Killed(_))));
    assert!(
        s.wait_idle(Duration::from_secs(20)),
        "{} still alive",
        s.live()
    );
    assert_eq!(s.free_slots(), 2100);
}

#[test]
fn monitoring_ended_unknown_or_own_ids() {
    let a = Actors::new();
    let s = scheduler(2, 16);
    let gone = a.spawn(&s, "finish42", &[]);
    gone.join().unwrap();
    let r = i64s(&a.run(&s, "monitor_id", &[Val::I64(gone.id() as i64)]));
    assert_eq!(
        r,
        vec![
            0,
            (MessageKind::Down as i64) << 32 | 24,
            ExitReason::NoProc as i64
        ]
    );
    // Unknown id: a code, nothing arrives.
    let r = i64s(&a.run(&s, "monitor_id", &[Val::I64(1 << 40)]));
    assert_eq!(r[0], -1);
    assert_eq!(r[1] as i32, RECV_TIMEOUT);
    // Links to ended or unknown ids, and removals of what is not there.
    assert_eq!(
        i64s(&a.run(&s, "link_id", &[Val::I64(gone.id() as i64)])),
        vec![-3]
    );
    assert_eq!(i64s(&a.run(&s, "link_id", &[Val::I64(-5)])), vec![-1]);
    assert_eq!(
        i64s(&a.run(&s, "demonitor_id", &[Val::I64(gone.id() as i64)])),
        vec![-8]
    );
    assert_eq!(
        i64s(&a.run(&s, "unlink_id", &[Val::I64(gone.id() as i64)])),
        vec![-8]
    );
}

#[test]
fn bad_inputs_get_codes() {
    let a = Actors::new();
    let s = scheduler(1, 8);
    let r = i64s(&a.run(&s, "bad_inputs", &[]));
    assert_eq!(
        r,
        vec![
            -4,                  // export name out of bounds
            -2,                  // no such export ("counter")
            -3,                  // wrong argument count
            -9,                  // unknown flag
            -7,                  // unknown module
            -4,                  // argument array out of bounds
            -1,                  // monitor of an id never spawned
            -2,                  // monitor of self
            -2,                  // link to self
            -5,                  // a 65-byte name
            -8,                  // unregister of a name not held
            i64::from(i32::MIN), // whereis with the name out of bounds
        ]
    );
    assert!(s.wait_idle(Duration::from_secs(5)));
    assert_eq!(s.free_slots(), 8);
}

#[test]
fn receive_times_out_and_polls() {
    let a = Actors::new();
    let s = scheduler(1, 4);
    let t = Instant::now();
    let r = i64s(&a.run(&s, "recv_timeout", &[Val::I64(30_000_000)]));
    assert!(
        t.elapsed() >= Duration::from_millis(30),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(r, vec![i64::from(RECV_TIMEOUT as u32)]);
    let r = i64s(&a.run(&s, "recv_timeout", &[Val::I64(0)]));
    assert_eq!(r, vec![i64::from(RECV_TIMEOUT as u32)]);
    // A message that arrives before the timeout is received, and the
    // instance does not wake again when the timer fires.
    let h = a.spawn(&s, "recv_timeout", &[Val::I64(2_000_000_000)]);
    while h.state() != InstanceState::Parked {
        std::thread::sleep(Duration::from_millis(1));
    }
    h.send(b"hi".to_vec()).unwrap();
    assert_eq!(h.join(), Ok(vec![Val::I64(2)]));
}

#[test]
fn monitor_set_while_the_target_ends_always_reports() {
    let a = Actors::new();
    let s = scheduler(2, 600);
    for _ in 0..4 {
        let r = i64s(&a.run(&s, "race_monitor", &[Val::I32(500)]));
        assert_eq!(r[0], 500, "every monitor was accepted");
        assert_eq!(r[1], 500, "exactly one down message per monitor");
    }
}

#[test]
fn link_to_an_instance_trapping_in_the_same_slice() {
    let a = Actors::new();
    let s = scheduler(2, 600);
    let mut linked = 0;
    for _ in 0..4 {
        let r = i64s(&a.run(&s, "race_link", &[Val::I32(500)]));
        assert_eq!(r[0] + r[1], 500, "each link made or answered ended: {r:?}");
        assert_eq!(r[2], r[0], "one exit message per link made: {r:?}");
        linked += r[0];
    }
    eprintln!("links made before the trap: {linked} of 2000");
}

#[test]
fn spawn_storm_past_capacity_gets_codes_and_leaks_nothing() {
    let a = Actors::new();
    let s = scheduler(2, 32);
    let r = i64s(&a.run(&s, "storm", &[Val::I32(200)]));
    assert_eq!(
        r,
        vec![31, 169, 0],
        "31 slots beside the parent's, then at capacity"
    );
    for id in 1..=300 {
        if let Some(h) = s.handle(id) {
            h.cancel();
        }
    }
    assert!(s.wait_idle(Duration::from_secs(5)));
    assert_eq!(s.free_slots(), 32);
}

#[test]
fn names_are_found_freed_at_the_end_and_reused() {
    let a = Actors::new();
    let s = scheduler(2, 8);
    let first = a.spawn(&s, "named", &[]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.whereis("counter").is_none() {
        assert!(Instant::now() < deadline, "never registered");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(s.whereis("counter").map(|h| h.id()), Some(first.id()));
    assert_eq!(i64s(&a.run(&s, "where", &[])), vec![first.id() as i64]);
    // A second instance cannot take the name while the first lives.
    let second = a.spawn(&s, "named", &[]);
    while second.state() != InstanceState::Parked {
        std::thread::sleep(Duration::from_millis(1));
    }
    second.send(vec![1]).unwrap();
    assert_eq!(i64s(&second.join().unwrap()), vec![-6, 1]);
    first.send(vec![1]).unwrap();
    assert_eq!(i64s(&first.join().unwrap()), vec![0, 1]);
    assert_eq!(i64s(&a.run(&s, "where", &[])), vec![-1]);
    // Free again: a new instance gets it.
    let third = a.spawn(&s, "named", &[]);
    while s.whereis("counter").is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(s.whereis("counter").map(|h| h.id()), Some(third.id()));
    third.cancel();
    let _ = third.join();
    assert!(s.whereis("counter").is_none());
}

#[test]
fn embedding_api_monitor_link_register_and_module_registry() {
    let a = Actors::new();
    let s = scheduler(2, 16);
    // Guest spawn of a module the embedder registered by name.
    s.register_module("other", &a.module, Some(&a.linker))
        .unwrap();
    let r = i64s(&a.run(&s, "spawn_other", &[]));
    assert_eq!(r, vec![ExitReason::Finished as i64, 42]);

    // The embedder makes one instance monitor another.
    let watcher = a.spawn(&s, "waiter", &[]);
    let target = a.spawn(&s, "waiter", &[]);
    target.monitor_by(&watcher).unwrap();
    target.cancel();
    let r = i64s(&watcher.join().unwrap());
    assert_eq!(r, vec![(MessageKind::Down as i64) << 32 | 24]);

    // Links from the embedder, and trap_exit set from outside.
    let x = a.spawn(&s, "waiter", &[]);
    let y = a.spawn(&s, "waiter", &[]);
    x.link(&y).unwrap();
    assert!(!y.set_trap_exit(true));
    x.cancel();
    let r = i64s(&y.join().unwrap());
    assert_eq!(r, vec![(MessageKind::Exit as i64) << 32 | 24]);

    // Names from the embedder.
    let z = a.spawn(&s, "waiter", &[]);
    s.register("zed", &z).unwrap();
    assert_eq!(s.whereis("zed").map(|h| h.id()), Some(z.id()));
    assert!(s.register("zed", &watcher).is_err());
    s.unregister("zed", &z).unwrap();
    assert!(s.whereis("zed").is_none());
    z.cancel();
    assert!(s.wait_idle(Duration::from_secs(5)));
}

#[test]
fn system_messages_round_trip() {
    let m = SystemMessage {
        kind: MessageKind::Exit,
        id: 77,
        reason: ExitReason::Killed,
        detail: -3,
    };
    assert_eq!(SystemMessage::decode(&m.encode()), Some(m));
    assert_eq!(SystemMessage::decode(&[0; 24]), None);
    assert_eq!(SystemMessage::decode(&[1; 23]), None);
}

#[test]
fn instances_waking_each_other_do_not_starve_the_queue() {
    // One worker: a pair that passes a message back and forth would run
    // for ever from the LIFO stack; the streak bound lets the spinner in.
    let a = Actors::new();
    let s = scheduler(1, 8);
    let x = a.spawn(&s, "bouncer", &[]);
    let y = a.spawn(&s, "bouncer", &[]);
    x.send(y.id().to_le_bytes().to_vec()).unwrap();
    y.send(x.id().to_le_bytes().to_vec()).unwrap();
    x.send(vec![0; 8]).unwrap();
    let spinner = a.spawn(&s, "spin", &[Val::I64(50_000_000)]);
    assert_eq!(
        spinner.join_timeout(Duration::from_secs(30)),
        Some(Ok(vec![Val::I64(1)]))
    );
    assert!(
        x.stats().slices > 100,
        "the pair kept running: {:?}",
        x.stats()
    );
    x.cancel();
    y.cancel();
    assert!(s.wait_idle(Duration::from_secs(5)));
}

#[test]
fn embedder_spawn_with_monitor_and_link_sees_an_immediate_end() {
    let a = Actors::new();
    let s = scheduler(2, 16);
    let watcher = a.spawn(&s, "waiter_reason", &[]);
    let partner = a.spawn(&s, "waiter", &[]);
    let child = s
        .spawn_with(
            &a.module,
            "trap",
            &[],
            SpawnOptions::new()
                .linker(&a.linker)
                .monitored_by(&watcher)
                .linked_to(&partner),
        )
        .unwrap();
    assert_eq!(
        child.join(),
        Err(InstanceError::Trap(TrapKind::Unreachable))
    );
    // The watcher learns the real reason (not NoProc), the partner dies.
    assert_eq!(
        i64s(&watcher.join().unwrap()),
        vec![
            (MessageKind::Down as i64) << 32 | 24,
            ExitReason::Trapped as i64
        ]
    );
    assert_eq!(partner.join(), Err(InstanceError::Killed(child.id())));
    assert!(s.wait_idle(Duration::from_secs(5)));
    assert_eq!(s.free_slots(), 16);
}

#[test]
fn receive_timeouts_cut_short_do_not_pile_up_in_the_timer_queue() {
    // A pair passing a message back and forth, each receive with a long
    // timeout that the next message ends early: every wait leaves a timer
    // entry behind, and the queue must purge them, not grow.
    let a = Actors::new();
    let s = scheduler(2, 8);
    let x = a.spawn(&s, "bouncer_timeout", &[]);
    let y = a.spawn(&s, "bouncer_timeout", &[]);
    x.send(y.id().to_le_bytes().to_vec()).unwrap();
    y.send(x.id().to_le_bytes().to_vec()).unwrap();
    x.send(vec![0; 8]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while x.stats().slices < 20_000 {
        assert!(
            Instant::now() < deadline,
            "the pair stalled: {:?}",
            x.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        s.pending_timers() <= 1100,
        "{} timer entries",
        s.pending_timers()
    );
    x.cancel();
    y.cancel();
    assert!(s.wait_idle(Duration::from_secs(5)));
}

#[test]
fn a_live_target_with_a_full_list_of_watchers_is_not_reported_ended() {
    // A review filled one target's watchers (4,096, duplicates allowed)
    // and the next monitor got a no-proc down message for a running
    // instance. Now it gets "no room", its charge back, and no message.
    let a = Actors::new();
    let s = Scheduler::new(SchedulerConfig {
        workers: 1,
        capacity: 8,
        memory_limit: Some(64 << 20),
        pin_workers: false,
        ..SchedulerConfig::default()
    })
    .expect("scheduler");
    let target = a.spawn(&s, "waiter", &[]);
    let w1 = a.spawn(&s, "waiter", &[]);
    let w2 = a.spawn(&s, "waiter", &[]);
    let mut added = 0;
    while target.monitor_by(&w1).is_ok() {
        added += 1;
    }
    assert_eq!(added, 4_096);
    assert_eq!(target.monitor_by(&w2), Err(ActorError::NoRoom));
    assert!(!target.state().is_done());
    // w2 holds no charge for the refused monitor and no message: it can
    // still monitor another live instance.
    assert_eq!(w1.monitor_by(&w2), Ok(()));
    for h in [&target, &w1, &w2] {
        h.cancel();
    }
    s.shutdown();
}

#[test]
fn relations_with_an_ended_watcher_are_refused_as_ended() {
    let a = Actors::new();
    let s = scheduler(2, 16);
    let target = a.spawn(&s, "waiter", &[]);
    let gone = a.spawn(&s, "finish42", &[]);
    gone.join().unwrap();
    // Both were answered "Ok" (a monitor) and "no room" (a spawn).
    assert_eq!(target.monitor_by(&gone), Err(ActorError::Ended(gone.id())));
    let r = s.spawn_with(
        &a.module,
        "waiter",
        &[],
        SpawnOptions::new().linker(&a.linker).linked_to(&gone),
    );
    assert!(
        matches!(r, Err(myriad_scheduler::SpawnError::RelatedEnded(id)) if id == gone.id()),
        "{:?}",
        r.err()
    );
    target.cancel();
    s.shutdown();
}

#[test]
fn monitors_of_ended_ids_stop_at_the_mailbox_bound() {
    // Each no-proc notice is queued whatever the mailbox holds; a review's
    // guest queued 4 million without reading them. Now the monitor is
    // refused (-4) once the mailbox holds its bound of messages.
    const FLOOD: &str = r#"(module
      (import "myriad" "monitor" (func $monitor (param i64) (result i32)))
      (func (export "flood") (param $id i64) (result i32 i32) (local $n i32) (local $r i32)
        (loop $l
          (local.set $r (call $monitor (local.get $id)))
          (if (i32.eqz (local.get $r)) (then
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $n) (i32.const 100000))))))
        (local.get $n) (local.get $r)))"#;
    let a = Actors::new();
    let s = scheduler(1, 16);
    let gone = a.spawn(&s, "finish42", &[]);
    gone.join().unwrap();
    let h = s
        .spawn_with(
            &module(FLOOD),
            "flood",
            &[Val::I64(gone.id() as i64)],
            SpawnOptions::new().linker(&a.linker),
        )
        .expect("spawn");
    let r = i64s(&h.join().expect("finishes"));
    assert_eq!(r, vec![1_024, -4]);
    s.shutdown();
}
