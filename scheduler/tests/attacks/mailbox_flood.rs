//! Attack: flood an instance's mailbox. Any instance may send to any id,
//! and a receiver that never reads would keep every message in host
//! memory (5,000 sends of 64 KiB gave a 64 KiB instance 315 MiB).
//!
//! Must hold: a mailbox holds at most `mailbox_messages` messages and
//! `mailbox_bytes` bytes (32 bytes of overhead counted per message), and
//! what it holds is charged to the receiver's memory limit; past any of
//! them a send is refused (`SendError::MailboxFull`, `-3` from
//! `myriad.send`) and nothing is queued. Reading frees the room again.

use super::{linker, module};
use myriad_runtime::Val;
use myriad_scheduler::{InstanceError, Limit, Scheduler, SchedulerConfig, SendError, SpawnOptions};
use std::time::Duration;

/// A receiver that sleeps for a long time and never reads.
const DEAF: &str = r#"(module
  (import "myriad" "sleep" (func $sleep (param i64)))
  (func (export "run") (call $sleep (i64.const 60000000000))))"#;

fn config() -> SchedulerConfig {
    SchedulerConfig {
        workers: 1,
        capacity: 8,
        heap_capacity: 64 * 1024,
        pin_workers: false,
        ..SchedulerConfig::default()
    }
}

#[test]
fn a_host_flood_stops_at_the_mailbox_bounds() {
    let s = Scheduler::new(config()).expect("scheduler");
    let h = s
        .spawn_with(
            &module(DEAF),
            "run",
            &[],
            SpawnOptions::new().linker(&linker()),
        )
        .expect("spawn");
    let big = vec![0xABu8; 64 * 1024];
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..5_000 {
        match h.send(big.clone()) {
            Ok(()) => accepted += 1,
            Err(SendError::MailboxFull(id)) => {
                assert_eq!(id, h.id());
                refused += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    // The default mailbox holds 64 KiB in all: not one 64 KiB message
    // plus its overhead.
    assert_eq!(accepted, 0, "a message larger than the mailbox was queued");
    assert_eq!(refused, 5_000);
    // Small messages: the message bound holds.
    let mut accepted = 0;
    for _ in 0..5_000 {
        if h.send(Vec::new()).is_ok() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, SchedulerConfig::default().mailbox_messages);
    assert_eq!(h.mailbox_len(), accepted);
    h.cancel();
    s.shutdown();
}

#[test]
fn the_mailbox_is_charged_to_the_receivers_memory_limit() {
    let cfg = SchedulerConfig {
        mailbox_bytes: 16 << 20,
        mailbox_messages: 1 << 20,
        heap_capacity: 256 * 1024,
        ..config()
    };
    let s = Scheduler::new(cfg).expect("scheduler");
    // The receiver has a 1-page memory (64 KiB) and a 200 KiB limit: room
    // for about 136 KiB of messages.
    let receiver = r#"(module
      (import "myriad" "sleep" (func $sleep (param i64)))
      (import "myriad" "recv" (func $recv (param i32 i32) (result i32)))
      (memory 1 4)
      (func (export "run") (result i32)
        (call $sleep (i64.const 200000000))
        (drop (call $recv (i32.const 0) (i32.const 1024)))
        (drop (call $recv (i32.const 0) (i32.const 1024)))
        ;; 64 KiB of mailbox is free again, but a page of memory more
        ;; would still pass the limit while the rest waits.
        (memory.grow (i32.const 2))))"#;
    let h = s
        .spawn_with(
            &module(receiver),
            "run",
            &[],
            SpawnOptions::new().linker(&linker()).memory(200 * 1024),
        )
        .expect("spawn");
    let msg = vec![7u8; 1024 - 32];
    let mut accepted = 0u64;
    while h.send(msg.clone()).is_ok() {
        accepted += 1;
        assert!(accepted < 1_000, "the memory limit never refused a message");
    }
    // 64 KiB of memory + n KiB of messages <= 200 KiB.
    assert_eq!(accepted, 136);
    match h.join_timeout(Duration::from_secs(20)) {
        Some(Err(InstanceError::Limit(Limit::Memory))) => {}
        other => panic!("expected the grow to hit the limit, got {other:?}"),
    }
    s.shutdown();
}

#[test]
fn a_guest_flood_gets_a_distinct_code_and_reading_makes_room() {
    let s = Scheduler::new(SchedulerConfig {
        mailbox_messages: 10,
        ..config()
    })
    .expect("scheduler");
    let deaf = s
        .spawn_with(
            &module(DEAF),
            "run",
            &[],
            SpawnOptions::new().linker(&linker()),
        )
        .expect("spawn");
    // Sends 100 one-byte messages to `dest`; returns how many were
    // refused with -3 (and traps on any other failure).
    let flooder = r#"(module
      (import "myriad" "send" (func $send (param i64 i32 i32) (result i32)))
      (memory 1)
      (func (export "run") (param $dest i64) (result i32)
        (local $i i32) (local $full i32) (local $r i32)
        (loop $l
          (local.set $r (call $send (local.get $dest) (i32.const 0) (i32.const 1)))
          (if (i32.eq (local.get $r) (i32.const -3))
            (then (local.set $full (i32.add (local.get $full) (i32.const 1))))
            (else (if (i32.ne (local.get $r) (i32.const 0)) (then unreachable))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))
        (local.get $full)))"#;
    let f = s
        .spawn_with(
            &module(flooder),
            "run",
            &[Val::I64(deaf.id() as i64)],
            SpawnOptions::new().linker(&linker()),
        )
        .expect("spawn");
    assert_eq!(f.join().expect("flooder"), vec![Val::I32(90)]);
    assert_eq!(deaf.mailbox_len(), 10);
    deaf.cancel();
    s.shutdown();
}
