//! Attack: read the previous tenant's stack through a host function that
//! returns without writing its results. The import stub's value buffer
//! lives on the instance stack; if the runtime handed it to the host
//! function as it found it, the results would be whatever the slot's
//! previous tenant left there.
//!
//! Must hold: results a host function does not write read as zero, so
//! the new tenant of a slot sees nothing of the old one's data.

use crate::harness::{compile, run};
use myriad_codegen::abi::{FuncType, ValType};
use myriad_runtime::{HostAction, Instance, Linker, Outcome, Region, RegionConfig, Val};
use std::sync::Arc;

const SECRET: i64 = 0x5EC2_E75E_C2E7_0000;

/// A tenant that fills its stack with `SECRET`-derived values: recursion
/// through frames holding 32 spilled copies of the secret.
fn secret_keeper() -> String {
    let defs: String = (0..32)
        .map(|k| {
            format!(
                "(local.set {} (i64.add (local.get 0) (i64.const {})))",
                k + 2,
                k
            )
        })
        .collect();
    let uses: String = (0..32)
        .map(|k| format!("(i64.xor (local.get {})) ", k + 2))
        .collect();
    format!(
        "(module
           (func $f (export \"run\") (param i64) (param i64) (result i64) (local {l})
             {defs}
             (if (result i64) (i64.eqz (local.get 1))
               (then (local.get 0))
               (else (call $f (local.get 0) (i64.sub (local.get 1) (i64.const 1)))))
             {uses}))",
        l = vec!["i64"; 32].join(" ")
    )
}

/// A tenant whose host import has `params` parameters and `results`
/// results and writes nothing; `run` returns the bitwise or of the results.
fn reader(params: usize, results: usize) -> String {
    let r = vec!["i64"; results].join(" ");
    let p = vec!["i64"; params].join(" ");
    let args: String = (0..params).map(|_| "(i64.const 0)").collect();
    let ors: String = (0..results).map(|_| "(i64.or) ").collect();
    format!(
        "(module
           (import \"env\" \"lazy\" (func $lazy (param {p}) (result {r})))
           (func (export \"run\") (result i64) (i64.const 0) (call $lazy {args}) {ors}))"
    )
}

#[test]
fn unwritten_host_results_read_as_zero_not_the_previous_tenants_stack() {
    let region = Arc::new(
        Region::new(RegionConfig {
            slots: 1,
            // Room for a 1,000-result call: the caller's return area and
            // the stub's buffer and spills.
            stack_size: 64 * 1024,
            heap_capacity: 0,
            guard_size: 0,
            guard_mode: false,
            heap_reservation: 0,
        })
        .expect("region"),
    );
    let keeper = compile(&secret_keeper());
    for (params, results) in [(0, 1), (0, 16), (0, 300), (3, 200), (10, 1000)] {
        // Tenant 1 fills the slot's stack with the secret.
        let mut inst = Instance::new(&region, &keeper, "run", &[Val::I64(SECRET), Val::I64(200)])
            .expect("keeper");
        let end = run(&mut inst);
        assert!(matches!(end, Outcome::Finished(_)), "keeper: {end:?}");
        drop(inst);

        // Tenant 2 gets the same slot and asks a lazy host function.
        let mut linker = Linker::new();
        let ty = FuncType {
            params: vec![ValType::I64; params],
            results: vec![ValType::I64; results],
        };
        linker.func("env", "lazy", ty, |_, _| HostAction::Return);
        let module = compile(&reader(params, results));
        let mut inst = linker.instantiate(&region, &module, None).expect("reader");
        inst.call("run", &[]).expect("arm");
        let end = run(&mut inst);
        let Outcome::Finished(v) = end else {
            panic!("({params} params, {results} results): reader did not finish: {end:?}");
        };
        // Results overlapping a parameter cell hold that parameter (0
        // here); the others must be zero, never stack leftovers.
        assert_eq!(
            v,
            vec![Val::I64(0)],
            "({params} params, {results} results): unwritten results carry old stack data"
        );
    }
}
