//! What the attacks share: compiling WAT through the real code generator,
//! regions with canary-filled neighbours, and running a test body in a
//! child process.
#![allow(dead_code)]

use myriad_codegen::CompileConfig;
use myriad_runtime::{Instance, Module, Outcome, Region, RegionConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// The suite's artifact cache, shared by its child processes (artifacts are
/// named by content hash and written by rename, so sharing is safe).
pub fn cache_dir() -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("attacks-cache");
    std::fs::create_dir_all(&d).expect("create the artifact cache");
    // The cache refuses directories others can write to.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
        .expect("restrict the artifact cache");
    d
}

/// Compile `wat` (default configuration) and load it.
pub fn compile(wat: &str) -> Arc<Module> {
    compile_with(wat, &CompileConfig::default())
}

/// Compile `wat` with `config` and load it.
pub fn compile_with(wat: &str, config: &CompileConfig) -> Arc<Module> {
    let wasm = wat::parse_str(wat).expect("attack WAT assembles");
    Arc::new(Module::compile(&wasm, config, &cache_dir()).expect("compile+load"))
}

/// Resume `inst` in 2 ms slices until it is no longer merely `Yielded`.
pub fn run(inst: &mut Instance) -> Outcome {
    loop {
        let now = myriad_runtime::rdtsc();
        match inst.resume(now + 2_000_000) {
            Outcome::Yielded => continue,
            other => return other,
        }
    }
}

/// Run `body` in a child process: the child re-runs this test binary with
/// only the test `test` (its full path, e.g. `stack_frames::default_mode`)
/// and `MYRIAD_ATTACK_CHILD=test`; in the child, `body` runs directly. The
/// parent asserts the child exited successfully, showing its output
/// otherwise (a crash is a failed defence, not a dead suite).
pub fn in_child(test: &str, body: impl FnOnce()) {
    if std::env::var("MYRIAD_ATTACK_CHILD").as_deref() == Ok(test) {
        body();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary path"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("MYRIAD_ATTACK_CHILD", test)
        .output()
        .expect("spawn the child test process");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "attack {test} failed in its child process ({}):\n{text}",
        out.status
    );
    assert!(
        text.contains("1 passed"),
        "the child of {test} did not run the test:\n{text}"
    );
}

/// Where the attacker sits in the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// Slot 0: below its stack is whatever lies below the region.
    First,
    /// Slot 1 of 3: below its stack is slot 0's heap, above its heap slot 2.
    Middle,
}

/// A region of three slots whose non-attacker slots hold victims with
/// canary-filled memories.
pub struct Arena {
    /// The region.
    pub region: Arc<Region>,
    /// The attacker's slot.
    pub slot: u32,
    victims: Vec<(Instance, Vec<u8>)>,
}

/// Heap capacity of every slot in an [`Arena`]: one 64 KiB wasm page, all of
/// it the victims' memory, so every byte between two stacks is a victim's.
pub const ARENA_HEAP: usize = 64 * 1024;

impl Arena {
    /// Three slots of `stack_size` bytes of stack; guard mode puts a 4 KiB
    /// `PROT_NONE` guard after each heap (so below each stack).
    pub fn new(stack_size: usize, guard_mode: bool, position: Position) -> Arena {
        let region = Arc::new(
            Region::new(RegionConfig {
                slots: 3,
                stack_size,
                heap_capacity: ARENA_HEAP,
                guard_size: if guard_mode { 4096 } else { 0 },
                guard_mode,
                heap_reservation: 0,
            })
            .expect("region"),
        );
        let victim = compile("(module (memory (export \"mem\") 1 1) (func (export \"run\")))");
        let slot = match position {
            Position::First => 0,
            Position::Middle => 1,
        };
        // Slots are handed out lowest first; hold the attacker's slot
        // free while the victims take the others.
        let mut victims = Vec::new();
        let mut placeholder = None;
        for s in 0..3u32 {
            let mut inst = Instance::instantiate(&region, &victim).expect("victim");
            assert_eq!(inst.slot(), s, "slots are handed out in order");
            if s == slot {
                placeholder = Some(inst);
                continue;
            }
            let canary: Vec<u8> = (0..ARENA_HEAP)
                .map(|i| (i.wrapping_mul(131) ^ (s as usize * 29) ^ 0xA5) as u8)
                .collect();
            inst.memory_mut().copy_from_slice(&canary);
            victims.push((inst, canary));
        }
        drop(placeholder);
        Arena {
            region,
            slot,
            victims,
        }
    }

    /// Panic unless every victim's memory still holds its canary.
    pub fn check(&self, what: &str) {
        for (inst, canary) in &self.victims {
            let mem = inst.memory();
            if mem != canary.as_slice() {
                let changed: Vec<usize> = (0..mem.len()).filter(|&i| mem[i] != canary[i]).collect();
                panic!(
                    "{what}: victim in slot {} changed: {} bytes, offsets {:#x}..={:#x} \
                     (of a {:#x}-byte heap; the attacker is slot {})",
                    inst.slot(),
                    changed.len(),
                    changed[0],
                    changed[changed.len() - 1],
                    mem.len(),
                    self.slot
                );
            }
        }
    }
}
