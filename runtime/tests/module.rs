//! Artifact checks: refusals with the right error, and a real shared
//! object (built here with `cc` from C following the ABI) that loads and runs.

mod common;

use common::*;
use myriad_codegen::abi::{self, ValType::*};
use myriad_runtime::{Instance, LoadError, Module, Outcome, Val};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A fresh, empty directory for one test (under Cargo's per-target
/// scratch directory; emptied first in case a run with the same process id
/// left one behind).
fn tmp() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("runtime-module-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Bytes shaped like an artifact (not an ELF): filler, hash cell,
/// metadata recording `target` and `features`.
fn fake_artifact(target: &str, features: &[&str]) -> Vec<u8> {
    let mut md = metadata(&[("add", ft(&[I64, I64], &[I64]))], None, vec![]);
    md.target = target.into();
    md.cpu_features = features.iter().map(|f| f.to_string()).collect();
    let blob = md.encode();
    let mut f = b"\x7fELF not really".to_vec();
    f.extend_from_slice(&abi::HASH_MARKER);
    f.extend_from_slice(&[0; abi::HASH_LEN]);
    f.extend_from_slice(&abi::METADATA_MARKER);
    f.extend_from_slice(&(blob.len() as u32).to_le_bytes());
    f.extend_from_slice(&blob);
    f.extend_from_slice(b"trailer");
    patch_hash(&mut f);
    f
}

fn patch_hash(f: &mut [u8]) {
    let at = abi::find_marker(f, &abi::HASH_MARKER).unwrap();
    let h = abi::artifact_hash(f, at);
    f[at + 16..at + 16 + abi::HASH_LEN].copy_from_slice(&h);
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = tmp().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn refuses_file_without_markers() {
    let p = write("plain.so", b"just some bytes");
    assert!(matches!(
        Module::from_file(&p),
        Err(LoadError::NotAnArtifact { .. })
    ));
}

#[test]
fn refuses_missing_file() {
    assert!(matches!(
        Module::from_file(Path::new("/nonexistent/x.so")),
        Err(LoadError::Io { .. })
    ));
}

#[test]
fn refuses_every_flipped_byte_outside_the_hash_cell() {
    let good = fake_artifact(abi::target::HOST_TARGET, &["has_sse3"]);
    let hash_at = abi::find_marker(&good, &abi::HASH_MARKER).unwrap();
    // Sanity: the good file passes the checks up to the last, the ELF
    // structure (it is not an ELF file), which comes before dlopen.
    let p = write("good.so", &good);
    assert!(matches!(
        Module::from_file(&p),
        Err(LoadError::Structure { .. })
    ));
    for i in 0..good.len() {
        if (hash_at + 16..hash_at + 16 + abi::HASH_LEN).contains(&i) {
            continue;
        }
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        let p = write("bad.so", &bad);
        match Module::from_file(&p) {
            Err(LoadError::Corrupt { .. }) | Err(LoadError::NotAnArtifact { .. }) => {}
            other => panic!("flip at {i}: {other:?}"),
        }
    }
    // Flipping the stored hash itself is also corruption.
    let mut bad = good.clone();
    bad[hash_at + 16] ^= 1;
    let p = write("bad2.so", &bad);
    assert!(matches!(
        Module::from_file(&p),
        Err(LoadError::Corrupt { .. })
    ));
}

#[test]
fn refuses_another_target_or_a_missing_cpu_feature_naming_it() {
    let p = write("target.so", &fake_artifact("riscv64-linux", &[]));
    let e = Module::from_file(&p).unwrap_err();
    assert!(matches!(e, LoadError::Target { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("riscv64-linux") && msg.contains(abi::target::HOST_TARGET),
        "{msg}"
    );
    let p = write(
        "feature.so",
        &fake_artifact(abi::target::HOST_TARGET, &["has_sse3", "has_warp_drive"]),
    );
    let e = Module::from_file(&p).unwrap_err();
    assert!(matches!(e, LoadError::Target { .. }), "{e:?}");
    assert!(e.to_string().contains("has_warp_drive"), "{e}");
}

#[test]
fn refuses_bad_metadata() {
    let mut md = metadata(&[("add", ft(&[I64, I64], &[I64]))], None, vec![]);
    md.abi_version = abi::ABI_VERSION + 1;
    let blob = md.encode();
    let mut f = abi::HASH_MARKER.to_vec();
    f.extend_from_slice(&[0; abi::HASH_LEN]);
    f.extend_from_slice(&abi::METADATA_MARKER);
    f.extend_from_slice(&(blob.len() as u32).to_le_bytes());
    f.extend_from_slice(&blob);
    patch_hash(&mut f);
    let p = write("abi.so", &f);
    assert!(matches!(
        Module::from_file(&p),
        Err(LoadError::Metadata {
            source: abi::MetadataError::AbiVersion { .. },
            ..
        })
    ));
}

/// Build a real artifact from C: `add` (plus `bias`) and a fuel-checking
/// `spin`. `tag` names the build files (tests run in parallel). Linked as
/// the compiler links (`-nostdlib -Bsymbolic`: no start files, so no
/// initialisers, and calls bound at link time, so no relocations).
fn c_artifact(dir: &Path, tag: &str, bias: i64) -> Vec<u8> {
    c_artifact_linked(dir, tag, bias, &["-nostdlib", "-Wl,-Bsymbolic"])
}

/// [`c_artifact`] linked with the extra `cc` flags `link`.
fn c_artifact_linked(dir: &Path, tag: &str, bias: i64, link: &[&str]) -> Vec<u8> {
    let md = metadata(
        &[
            ("add", ft(&[I64, I64], &[I64])),
            ("spin", ft(&[I64], &[I64])),
        ],
        mem_pages(1, None, 16),
        vec![],
    );
    let blob = md.encode();
    let mut meta = abi::METADATA_MARKER.to_vec();
    meta.extend_from_slice(&(blob.len() as u32).to_le_bytes());
    meta.extend_from_slice(&blob);
    let mut hash = abi::HASH_MARKER.to_vec();
    hash.extend_from_slice(&[0; abi::HASH_LEN]);
    let arr = |b: &[u8]| {
        b.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let src = format!(
        r#"
#include <stdint.h>
__attribute__((used, visibility("default"))) const unsigned char myriad_artifact_hash[{hl}] = {{{h}}};
__attribute__((used, visibility("default"))) const unsigned char myriad_metadata[{ml}] = {{{m}}};
int64_t myriad_func_0(char *vm, char *exec, int64_t a, int64_t b) {{ return a + b + {bias}; }}
int64_t myriad_func_1(char *vm, char *exec, int64_t n) {{
  volatile int64_t *fuel = (int64_t *)exec;
  void (*fe)(char *) = *(void (**)(char *))(vm + 32);
  int64_t i;
  for (i = 0; i < n; i++) {{ if (--*fuel < 0) fe(exec); }}
  return i;
}}
void myriad_export_0(char *vm, char *exec, uint64_t *v) {{ v[0] = myriad_func_0(vm, exec, v[0], v[1]); }}
void myriad_export_1(char *vm, char *exec, uint64_t *v) {{ v[0] = myriad_func_1(vm, exec, v[0]); }}
"#,
        hl = hash.len(),
        h = arr(&hash),
        ml = meta.len(),
        m = arr(&meta),
        bias = bias
    );
    let c = dir.join(format!("c_artifact_{tag}.c"));
    let so = dir.join(format!("c_artifact_{tag}.built.so"));
    std::fs::write(&c, src).unwrap();
    let st = std::process::Command::new("cc")
        .args(["-O2", "-shared", "-fPIC"])
        .args(link)
        .arg("-o")
        .arg(&so)
        .arg(&c)
        .status()
        .unwrap();
    assert!(st.success());
    let mut bytes = std::fs::read(&so).unwrap();
    patch_hash(&mut bytes);
    bytes
}

#[test]
fn c_built_artifact_loads_through_the_cache_and_runs() {
    let dir = tmp();
    let bytes = c_artifact(&dir, "cache", 0);
    let cache = dir.join("cache");
    let m = Arc::new(Module::from_artifact_bytes(&bytes, &cache).unwrap());
    assert!(m.path().starts_with(&cache));
    assert_eq!(m.export_type("add").unwrap().results, vec![I64]);
    // Second load of the same bytes reuses the cached file.
    let m2 = Module::from_artifact_bytes(&bytes, &cache).unwrap();
    assert_eq!(m2.path(), m.path());
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);

    let region = test_region(2);
    let mut a = Instance::new(&region, &m, "add", &[Val::I64(2), Val::I64(3)]).unwrap();
    assert_eq!(a.resume(u64::MAX / 2), Outcome::Finished(vec![Val::I64(5)]));
    let mut s = Instance::new(&region, &m, "spin", &[Val::I64(5_000_000)]).unwrap();
    let mut slices = 0;
    loop {
        let d = myriad_runtime::rdtsc() + myriad_runtime::fuel::ns_to_tsc(1000);
        match s.resume(d) {
            Outcome::Yielded => slices += 1,
            o => {
                assert_eq!(o, Outcome::Finished(vec![Val::I64(5_000_000)]));
                break;
            }
        }
    }
    assert!(slices > 5);
    // A flipped byte in the cached file is caught on the next load.
    let mut bad = bytes.clone();
    let n = bad.len() / 2;
    bad[n] ^= 0xff;
    let p = write("c_bad.so", &bad);
    assert!(matches!(
        Module::from_file(&p),
        Err(LoadError::Corrupt { .. })
    ));
}

/// The same artifact linked with the C start files has initialisers (and
/// calls through the PLT, so relocations): it is refused before `dlopen`, so
/// none of its code runs, by path and through the cache alike.
#[test]
fn an_artifact_with_initialisers_or_relocations_is_refused_before_dlopen() {
    let dir = tmp();
    let bytes = c_artifact_linked(&dir, "crt", 0, &[]);
    let p = write("crt.so", &bytes);
    match Module::from_file(&p) {
        Err(LoadError::Structure { reason, .. }) => {
            assert!(reason.contains("DT_"), "{reason}")
        }
        other => panic!("not refused: {other:?}"),
    }
    assert!(matches!(
        Module::from_artifact_bytes(&bytes, &dir.join("cache")),
        Err(LoadError::Structure { .. })
    ));
}

/// `dlopen` of a path loaded before returns the old object even after the
/// file was replaced: the loaded object's hash cell must be checked.
#[test]
fn replaced_file_at_a_loaded_path_is_refused() {
    let dir = tmp();
    let a = c_artifact(&dir, "swap_a", 0);
    let b = c_artifact(&dir, "swap_b", 100);
    assert_ne!(a, b);
    let p = dir.join("swapped.so");
    std::fs::write(&p, &a).unwrap();
    let ma = Arc::new(Module::from_file(&p).unwrap());
    // Replace the file (new inode: the mapped one is left alone) with a
    // different, valid artifact while A stays loaded.
    let tmp_b = dir.join("swapped.so.tmp");
    std::fs::write(&tmp_b, &b).unwrap();
    std::fs::rename(&tmp_b, &p).unwrap();
    let e = Module::from_file(&p).unwrap_err();
    assert!(matches!(e, LoadError::ChangedOnDisk { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("changed between verification and loading"),
        "{msg}"
    );
    // A is still loaded and runs its own code.
    let region = test_region(1);
    let mut i = Instance::new(&region, &ma, "add", &[Val::I64(2), Val::I64(3)]).unwrap();
    assert_eq!(i.resume(u64::MAX / 2), Outcome::Finished(vec![Val::I64(5)]));
    drop(i);
    drop(ma);
    // Once A is unloaded, the path loads B.
    let mb = Arc::new(Module::from_file(&p).unwrap());
    let mut i = Instance::new(&region, &mb, "add", &[Val::I64(2), Val::I64(3)]).unwrap();
    assert_eq!(
        i.resume(u64::MAX / 2),
        Outcome::Finished(vec![Val::I64(105)])
    );
}
