//! Arming calls, running slices, parking and unparking.

use super::{check_call, check_frame_fits, is_done_status, Instance, InstantiateError};
use crate::arch;
use crate::fuel;
use crate::group::WouldDeadlock;
use crate::signals::{self, CURRENT};
use crate::values::{Outcome, Val};
use crate::vmctx::{status, MAX_VALUES};
use myriad_abi::{TrapKind, ValType};

impl Instance {
    /// Supply the results of the host function that parked this instance
    /// and make it runnable again (the next resume continues the guest).
    /// `results` must match the host function's result types.
    pub fn unpark(&mut self, results: &[Val]) -> Result<(), InstantiateError> {
        self.unpark_with(results.len(), results.iter().map(|v| v.to_bits()))
    }

    /// Like [`Instance::unpark`] with raw cell bits (the count is checked,
    /// and `funcref` results must be null or this instance's own).
    pub fn unpark_bits(&mut self, results: &[u64]) -> Result<(), InstantiateError> {
        self.unpark_with(results.len(), results.iter().copied())
    }

    fn unpark_with(
        &mut self,
        count: usize,
        bits: impl Iterator<Item = u64> + Clone,
    ) -> Result<(), InstantiateError> {
        let vm = self.vm.as_ptr();
        // SAFETY: we own the vmctx (&mut self); the guest is suspended, and
        // while it is parked `host_values` is the stub's buffer of at least
        // `host_results` cells.
        unsafe {
            if (*vm).status != status::PARKED {
                return Err(InstantiateError::NotParked);
            }
            let want = (*vm).host_results as usize;
            if count != want {
                return Err(InstantiateError::UnparkValues(format!(
                    "the parked host function returns {want} values, {count} given"
                )));
            }
            // Check first (a refusal leaves the instance parked), then write.
            let refs = (*vm).host_ref_results;
            self.check_func_refs(bits.clone().enumerate().map(|(i, b)| {
                if i < 32 && refs >> i & 1 == 1 {
                    b
                } else {
                    0
                }
            }))?;
            let buf = (*vm).host_values;
            for (i, r) in bits.take(want).enumerate() {
                buf.add(i).write(r);
            }
            (*vm).status = status::YIELDED;
        }
        Ok(())
    }

    /// Refuse any non-zero value in `refs` (funcref bits the host passes
    /// in, 0 for other values) that is not this instance's own.
    fn check_func_refs(&self, refs: impl Iterator<Item = u64>) -> Result<(), InstantiateError> {
        for (index, bits) in refs.enumerate() {
            let own = self
                .core
                .tables
                .as_deref()
                .is_some_and(|t| t.owns_func_ref(bits));
            if bits != 0 && !own {
                return Err(InstantiateError::ForeignFuncRef { index });
            }
        }
        Ok(())
    }

    /// Arm a call of export `export` with `args`; [`Instance::resume`] then
    /// runs it and returns `Finished(results)`, `Trapped(kind)` or
    /// `Yielded` as usual. Allowed whenever no call is in progress: on a
    /// fresh instance and after the previous call finished or trapped
    /// (a trap ends the call, not the instance: memory and globals keep
    /// the values they had when it trapped). Refused with
    /// [`InstantiateError::CallInProgress`] while a call is suspended
    /// (`Yielded`). The previous call's stack is dead by then; the initial
    /// frame is rebuilt at the stack top. The first armed call also runs
    /// the pending start function (see [`Instance::instantiate`]).
    pub fn call(&mut self, export: &str, args: &[Val]) -> Result<(), InstantiateError> {
        let (wrapper, cells, results) = {
            let info = check_call(&self.core.module, export, args)?;
            check_frame_fits(&self.core.region, info.wrapper_frame, || {
                format!("export {export:?}")
            })?;
            let cells = info.ty.params.len().max(info.ty.results.len());
            (
                info.wrapper,
                cells,
                &info.ty.results[..] as *const [ValType],
            )
        };
        self.check_func_refs(args.iter().map(|a| match a {
            Val::FuncRef(bits) => *bits,
            _ => 0,
        }))?;
        self.ensure_idle()?;
        self.results = results;
        let start = self.take_start();
        self.arm(wrapper, start, args, cells);
        Ok(())
    }

    /// Arm a call that runs only the pending start function (no export);
    /// it finishes with no results. Returns `Ok(false)` (nothing armed) if
    /// the module has no start function or it has already run or been
    /// armed. Lets an embedder tell a trapping start function
    /// (instantiation failure, the spec's `assert_uninstantiable`) from a
    /// trapping export.
    pub fn call_start(&mut self) -> Result<bool, InstantiateError> {
        self.ensure_idle()?;
        let start = self.take_start();
        if start == 0 {
            return Ok(false);
        }
        self.results = &[];
        self.arm(0, start, &[], 0);
        Ok(true)
    }

    /// Whether the start function has yet to be armed.
    pub fn start_pending(&self) -> bool {
        self.start_pending
    }

    fn ensure_idle(&self) -> Result<(), InstantiateError> {
        // SAFETY: read of our own vmctx while the guest is not running.
        let st = unsafe { (*self.vm.as_ptr()).status };
        if is_done_status(st) {
            Ok(())
        } else {
            Err(InstantiateError::CallInProgress)
        }
    }

    fn take_start(&mut self) -> usize {
        if std::mem::take(&mut self.start_pending) {
            self.core.module.start_addr()
        } else {
            0
        }
    }

    /// Arm `entry` (a wrapper, or 0) after `start` (or 0) with `args` in a
    /// value buffer of `cells` cells: the vmctx's own, or a larger one this
    /// instance owns for an export with more than [`MAX_VALUES`] values.
    fn arm(&mut self, entry: usize, start: usize, args: &[Val], cells: usize) {
        self.wake_at = None;
        self.switched_in = false;
        let vm = self.vm.as_ptr();
        let vm_addr = vm as usize;
        let buf: *mut u64 = if cells > MAX_VALUES {
            self.big_values
                .insert(vec![0u64; cells].into_boxed_slice())
                .as_mut_ptr()
        } else {
            self.big_values = None;
            // SAFETY: a field of our own vmctx.
            unsafe { (&raw mut (*vm).values).cast::<u64>() }
        };
        // SAFETY: we own the vmctx and the slot's stack (&mut self); no call
        // is in progress, so nothing on the stack is live; `buf` holds
        // max(MAX_VALUES, cells) >= args.len() cells and lives until the
        // next arm (results are read from it until then).
        unsafe {
            for (i, a) in args.iter().enumerate() {
                buf.add(i).write(a.to_bits());
            }
            (*vm).values_ptr = buf;
            (*vm).entry = entry;
            (*vm).start = start;
            (*vm).trap_kind = 0;
            (*vm).host_sp = 0;
            // A host call the previous call left continuing
            // (`HostAction::Continue`, then ended from outside) is dead
            // with it: the trampoline must not repeat it at this call's
            // first resume after a yield.
            (*vm).again_fn = 0;
            (*vm).status = status::YIELDED;
            (*vm).guest_sp = arch::init_frame(vm_addr, vm);
        }
    }

    /// Run the guest until its slice ends at `deadline_tsc` (TSC ticks, see
    /// [`fuel::rdtsc`]), it finishes, or it traps. A slice shorter than
    /// the asynchronous threshold ([`fuel::set_async_preempt_min`], 1 ms
    /// by default) is paced by fuel checks, its first fuel refill sized
    /// from the instance's measured rate; a longer one ends by a timer's
    /// signal (`signals`, "Asynchronous preemption"), and its fuel
    /// checks never stop it.
    #[inline]
    pub fn resume(&mut self, deadline_tsc: u64) -> Outcome {
        self.resume_from(fuel::rdtsc(), deadline_tsc)
    }

    /// [`Instance::resume`] for a caller that has just read the TSC
    /// (`now_tsc`), saving a TSC read.
    #[inline]
    pub fn resume_from(&mut self, now_tsc: u64, deadline_tsc: u64) -> Outcome {
        // SAFETY: we own the vmctx (&mut self).
        let vm = unsafe { &mut *self.vm.as_ptr() };
        if vm.status == status::YIELDED {
            let span = deadline_tsc.saturating_sub(now_tsc);
            // Asynchronous if long enough, the code can be stopped by the
            // signal, and no cancel waits (the first check sees that).
            if fuel::wants_async(span)
                && self.core.module.preemptible()
                && vm.cancel.load(std::sync::atomic::Ordering::Relaxed) == 0
                && signals::arm_preempt_by(now_tsc, deadline_tsc)
            {
                fuel::begin_async_slice(vm, now_tsc, deadline_tsc);
            } else {
                fuel::begin_slice(vm, now_tsc, deadline_tsc);
            }
        }
        self.run()
    }

    /// Run one *fuel slice*: the guest runs until it has spent `units` of
    /// fuel (one unit per function entry and loop iteration, and one per
    /// 16 of operator weight beyond), then yields,
    /// whatever the time. The deterministic alternative to a time slice:
    /// the same guest takes the same slices on any machine. A cancel
    /// request is seen at the end of the slice. Fuel limits apply as usual.
    pub fn resume_fuel(&mut self, units: u64) -> Outcome {
        // SAFETY: we own the vmctx (&mut self).
        let vm = unsafe { &mut *self.vm.as_ptr() };
        if vm.status == status::YIELDED {
            // Never grant past the fuel budget: a limit ends the instance
            // where it would in small slices, whatever `units` is.
            fuel::settle(vm);
            let left = vm.fuel_limit.saturating_sub(vm.fuel_used);
            let units = units.min(left).clamp(1, fuel::MAX_FUEL as u64) as i64;
            fuel::begin_slice_with_fuel(vm, fuel::rdtsc(), u64::MAX, units);
            vm.fuel_sliced = 1;
        }
        self.run()
    }

    /// Run with an explicit first fuel refill.
    pub fn resume_with_fuel(&mut self, deadline_tsc: u64, fuel: i64) -> Outcome {
        // SAFETY: we own the vmctx (&mut self).
        let vm = unsafe { &mut *self.vm.as_ptr() };
        if vm.status == status::YIELDED {
            fuel::begin_slice_with_fuel(vm, fuel::rdtsc(), deadline_tsc, fuel);
        }
        self.run()
    }

    fn run(&mut self) -> Outcome {
        let vm = self.vm.as_ptr();
        // SAFETY: we own the vmctx; status is only changed by the guest side
        // while we are switched in.
        let st = unsafe { (*vm).status };
        if st == status::YIELDED {
            if !signals::thread_ready() {
                // Without an alternate signal stack a fault would push the
                // kernel's signal frame onto the small instance stack.
                signals::thread_init().expect("cannot set up the signal stack for this thread");
            }
            // A linked instance's code may run on this green thread's
            // stack, and finds it through its own vmctx: point the group
            // at it while it runs (see `crate::group`).
            let entered = self.group.get().map(|g| g.enter(vm));
            if let Some(Err(WouldDeadlock)) = entered {
                drop(entered);
                return self.refuse_deadlocked_call();
            }
            self.switched_in = true;
            let prev = CURRENT.with(|c| c.replace(vm));
            // SAFETY: guest_sp is a context saved by the guest's last yield
            // or built by init_frame; host_sp is written by the switch
            // before the guest can read it. The guest switches back exactly
            // once (yield, finish, or trap via abandon).
            unsafe {
                (*vm).status = status::RUNNING;
                arch::myriad_switch(&raw mut (*vm).host_sp, (*vm).guest_sp);
            }
            CURRENT.with(|c| c.set(prev));
            if !prev.is_null() {
                // A host function of `prev` resumed this instance; its own
                // slice goes on and may need the thread's timer back.
                // SAFETY: `prev` is the live exec of the green thread this
                // thread ran before (it is suspended in a host call).
                unsafe { signals::rearm_outer(prev) };
            }
            // SAFETY: the guest has switched back; we own the vmctx. A
            // deadline kick may have left its mark on the counter the
            // guest stored last (see `fuel::KICK`).
            unsafe { crate::fuel::unkick_vm(&mut *vm) };
            // A slice whose host call asked for a sleep takes the wake-up
            // instant it left on this thread (dropped with the instance if
            // that call then ended it some other way).
            // SAFETY: the guest has switched back; we own the vmctx.
            self.wake_at = unsafe {
                if (*vm).sleep_requested != 0 {
                    (*vm).sleep_requested = 0;
                    crate::host::take_sleep_request()
                } else {
                    None
                }
            };
        }
        self.outcome()
    }

    /// End the armed call: switching it in would wait for a group whose
    /// thread waits for one this thread runs
    /// ([`crate::group::GroupHandle::enter`]). It ends as a host trap, as
    /// a host function's refusal does, and the instance can be called
    /// again. A call that never ran has run nothing (a start function
    /// armed with it stays pending); a call in progress ends where it
    /// was suspended, as if it had trapped there.
    #[cold]
    fn refuse_deadlocked_call(&mut self) -> Outcome {
        let vm = self.vm.as_ptr();
        // SAFETY: we own the vmctx (&mut self) and the guest is not
        // running: it is suspended or was never switched in.
        unsafe {
            if !self.switched_in && (*vm).start != 0 {
                self.start_pending = true;
            }
            (*vm).status = status::TRAPPED;
            (*vm).trap_kind = TrapKind::HostTrap as u32;
        }
        self.wake_at = None;
        self.outcome()
    }

    /// The outcome as of now (`Yielded` for a fresh instance).
    pub fn outcome(&self) -> Outcome {
        // SAFETY: the guest is not running (we hold &self outside run).
        let vm = unsafe { &*self.vm.as_ptr() };
        match vm.status {
            // SAFETY: `results` points into the export table of
            // `core.module`, which this instance keeps alive and which is
            // never changed after load (or at a static empty slice).
            status::FINISHED => Outcome::Finished(
                unsafe { &*self.results }
                    .iter()
                    .enumerate()
                    // SAFETY: the armed buffer holds at least one cell per
                    // result and lives until the next arm.
                    .map(|(i, t)| Val::from_bits(*t, unsafe { vm.values_ptr.add(i).read() }))
                    .collect(),
            ),
            status::TRAPPED => Outcome::Trapped(
                TrapKind::from_code(vm.trap_kind as u8).unwrap_or(TrapKind::Unreachable),
            ),
            status::PARKED => Outcome::Parked,
            status::EXITED => Outcome::Exited(vm.exit_code),
            status::LIMITED => Outcome::Limited(
                crate::Limit::from_code(vm.trap_kind).unwrap_or(crate::Limit::CpuTime),
            ),
            _ => match self.wake_at {
                Some(at) => Outcome::Sleeping(at),
                None => Outcome::Yielded,
            },
        }
    }
}
