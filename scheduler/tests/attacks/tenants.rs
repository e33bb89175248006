//! Attack: reach another tenant's instance by its id. Ids are sequential,
//! so a guest can guess its neighbours': `link(id)` followed by a trap
//! killed 100 of 100 victims that imported nothing at all, a flood of
//! `send`s filled their mailboxes (charged to their memory limits), and
//! names were one namespace that anyone could squat.
//!
//! Must hold: a guest reaches only instances of its own tenant
//! (`SpawnOptions::tenant`); another tenant's id answers as an ended
//! instance's (`send` -1, `link` -3, `monitor` a no-proc down message),
//! names are per tenant, and the victim runs on untouched.

use super::{linker, module};
use myriad_runtime::{Linker, Val};
use myriad_scheduler::{
    InstanceError, InstanceState, Scheduler, SchedulerConfig, SpawnOptions, Tenant,
};
use std::sync::Arc;
use std::time::Duration;

const ATTACKER: &str = r#"(module
  (import "myriad" "link" (func $link (param i64) (result i32)))
  (import "myriad" "monitor" (func $monitor (param i64) (result i32)))
  (import "myriad" "send" (func $send (param i64 i32 i32) (result i32)))
  (import "myriad" "recv_msg" (func $recv_msg (param i32 i32 i64) (result i64)))
  (import "myriad" "whereis" (func $whereis (param i32 i32) (result i64)))
  (memory 1)
  (data (i32.const 0) "victim")
  ;; link to `id` and trap: a victim in the same tenant is killed
  (func (export "link_trap") (param $id i64) (result i32)
    (if (i32.ne (call $link (local.get $id)) (i32.const 0))
      (then (return (call $link (local.get $id)))))
    unreachable)
  ;; send, monitor (then the kind of the first message within 0.1 s:
  ;; 1 a down message, or the timeout code) and whereis "victim"
  (func (export "probe") (param $id i64) (result i32 i32 i64 i64)
    (call $send (local.get $id) (i32.const 0) (i32.const 6))
    (call $monitor (local.get $id))
    (call $recv_msg (i32.const 64) (i32.const 64) (i64.const 100000000))
    (call $whereis (i32.const 0) (i32.const 6))))"#;

/// Waits for messages for ever and registers as "victim".
const VICTIM: &str = r#"(module
  (import "myriad" "recv" (func $recv (param i32 i32) (result i32)))
  (import "myriad" "register" (func $register (param i32 i32) (result i32)))
  (memory 1)
  (data (i32.const 0) "victim")
  (func (export "run")
    (drop (call $register (i32.const 0) (i32.const 6)))
    (loop $l (drop (call $recv (i32.const 64) (i32.const 64))) (br $l))))"#;

fn setup() -> (Scheduler, Arc<Linker>) {
    let s = Scheduler::new(SchedulerConfig {
        workers: 2,
        capacity: 64,
        pin_workers: false,
        ..SchedulerConfig::default()
    })
    .expect("scheduler");
    (s, linker())
}

#[test]
fn another_tenants_instance_cannot_be_linked_monitored_sent_to_or_found() {
    let (s, l) = setup();
    let (ta, tv) = (s.new_tenant(), s.new_tenant());
    assert_ne!(ta, tv);
    assert_ne!(ta, Tenant::DEFAULT);
    let victim = s
        .spawn_with(
            &module(VICTIM),
            "run",
            &[],
            SpawnOptions::new().linker(&l).tenant(tv),
        )
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(20));
    let attacker = module(ATTACKER);
    let killer = s
        .spawn_with(
            &attacker,
            "link_trap",
            &[Val::I64(victim.id() as i64)],
            SpawnOptions::new().linker(&l).tenant(ta),
        )
        .expect("spawn");
    // The link is refused as to an ended instance (-3), so no trap.
    assert_eq!(killer.join(), Ok(vec![Val::I32(-3)]));
    let prober = s
        .spawn_with(
            &attacker,
            "probe",
            &[Val::I64(victim.id() as i64)],
            SpawnOptions::new().linker(&l).tenant(ta),
        )
        .expect("spawn");
    let r = prober.join().expect("probe ends");
    assert_eq!(r[0], Val::I32(-1), "send reached another tenant");
    assert_eq!(r[1], Val::I32(0), "monitor of an ended instance is 0");
    let Val::I64(kind_len) = r[2] else {
        panic!("{r:?}")
    };
    assert_eq!(kind_len >> 32, 1, "a down message (no-proc) at once");
    assert_eq!(r[3], Val::I64(-1), "the name is found in its tenant only");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(victim.state(), InstanceState::Parked);
    // The victim's tenant finds it; the embedder reaches it anywhere.
    assert_eq!(
        s.whereis_in(tv, "victim").map(|h| h.id()),
        Some(victim.id())
    );
    assert!(s.whereis("victim").is_none());
    victim
        .send(b"x".to_vec())
        .expect("the embedder is not limited");
    victim.cancel();
    assert_eq!(victim.join(), Err(InstanceError::Cancelled));
    s.shutdown();
}

#[test]
fn within_a_tenant_the_same_guest_kills_its_link() {
    let (s, l) = setup();
    let t = s.new_tenant();
    let victim = s
        .spawn_with(
            &module(VICTIM),
            "run",
            &[],
            SpawnOptions::new().linker(&l).tenant(t),
        )
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(20));
    let killer = s
        .spawn_with(
            &module(ATTACKER),
            "link_trap",
            &[Val::I64(victim.id() as i64)],
            SpawnOptions::new().linker(&l).tenant(t),
        )
        .expect("spawn");
    assert!(killer.join().is_err(), "the linker traps");
    assert_eq!(victim.join(), Err(InstanceError::Killed(killer.id())));
    s.shutdown();
}

#[test]
fn a_tenants_registered_modules_are_its_own() {
    // Registered modules were one namespace: any tenant's guest could
    // spawn a module registered for another (its code, data and imports).
    const SPAWNER: &str = r#"(module
      (import "myriad" "spawn_module" (func $sm (param i32 i32 i32 i32 i32) (result i64)))
      (memory 1)
      (data (i32.const 0) "w\00run")
      (func (export "try") (result i64)
        (call $sm (i32.const 0) (i32.const 5) (i32.const 64) (i32.const 0) (i32.const 0))))"#;
    let (s, l) = setup();
    let (a, b) = (s.new_tenant(), s.new_tenant());
    let child = module(r#"(module (func (export "run")))"#);
    s.register_module_in(a, "w", &child, None)
        .expect("register");
    let spawner = module(SPAWNER);
    let try_in = |t| {
        let h = s
            .spawn_with(
                &spawner,
                "try",
                &[],
                SpawnOptions::new().linker(&l).tenant(t),
            )
            .expect("spawn");
        match h.join().expect("finishes")[0] {
            Val::I64(v) => v,
            ref other => panic!("{other:?}"),
        }
    };
    assert!(try_in(a) > 0, "its own tenant spawns it");
    assert_eq!(try_in(b), -7, "another tenant finds no such module");
    // A module registered for every tenant is found by all.
    s.register_module("w", &child, None).expect("register");
    assert!(try_in(b) > 0);
    s.shutdown();
}
