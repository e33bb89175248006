//! The time-stamp counter and its frequency.
//!
//! Slice deadlines are TSC values, so turning a quantum into ticks needs the
//! TSC's frequency. [`tsc_hz`] finds it once per process, from the first
//! source that gives one:
//!
//! 1. Under a hypervisor (CPUID.1:ECX bit 31), the hypervisor's timing leaf
//!    `0x4000_0010` (EAX = TSC kHz), when the hypervisor is VMware or KVM
//!    and its highest leaf reaches it (KVM offers it with QEMU's
//!    `vmware-cpuid-freq`). The processor's own leaves are not used in a
//!    guest: a hypervisor that scales the guest's TSC may pass the host's
//!    through unchanged, which is why Linux prefers the hypervisor's figure
//!    too.
//! 2. On bare-metal Intel, CPUID leaf `0x15`: TSC = crystal Hz (ECX) ×
//!    EBX / EAX; when the crystal field is 0, the base frequency of leaf
//!    `0x16` (EAX, MHz), which is what the ratio times the crystal gives.
//! 3. Otherwise a short calibration against `CLOCK_MONOTONIC_RAW` (the
//!    kernel's unslewed clock; with the `tsc` clocksource it is itself the
//!    TSC scaled by the kernel's frequency). Each end of the interval is a
//!    bracket: clock, TSC, clock, the tightest of a few tries; the
//!    frequency's uncertainty is at most the two half-widths plus the
//!    clock's resolution over the interval. The calibration waits until that
//!    is below [`CALIBRATION_TOLERANCE`] (and at least
//!    [`MIN_CALIBRATION_NS`]), giving up on better at
//!    [`MAX_CALIBRATION_NS`]. With the vDSO clock that is about
//!    `MIN_CALIBRATION_NS`. [`start_calibration`] takes the first end early
//!    (the `myriad` command does it first thing, module loading does it
//!    too), so the wait mostly overlaps other start-up work.
//!
//! Every source's result must lie in `[MIN_HZ, MAX_HZ]`; one outside is
//! ignored and the next source tried (a calibration from a start stamp that
//! spans a suspend of the machine, say, is redone from scratch).

use std::sync::OnceLock;

/// Read the time-stamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is available on every x86_64 CPU and has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Lowest TSC frequency believed from any source (100 MHz).
pub const MIN_HZ: u64 = 100_000_000;
/// Highest TSC frequency believed from any source (10 GHz).
pub const MAX_HZ: u64 = 10_000_000_000;
/// A calibration stops once its relative uncertainty is at most this
/// (0.05 %: 50 ns of a 100 µs quantum).
pub const CALIBRATION_TOLERANCE: f64 = 5e-4;
/// A calibration lasts at least this long (100 µs), whatever its
/// uncertainty estimate says.
pub const MIN_CALIBRATION_NS: u64 = 100_000;
/// A calibration stops after this long (20 ms) even if its uncertainty is
/// still above [`CALIBRATION_TOLERANCE`] (a clock read that is a slow system
/// call, or a machine too busy to read clock and TSC close together).
pub const MAX_CALIBRATION_NS: u64 = 20_000_000;

/// Where the frequency came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TscSource {
    /// The hypervisor's timing leaf `0x4000_0010`.
    HypervisorLeaf,
    /// CPUID leaf `0x15` with its crystal frequency.
    CpuidCrystal,
    /// CPUID leaf `0x15`'s ratio with leaf `0x16`'s base frequency.
    CpuidBase,
    /// Measured against `CLOCK_MONOTONIC_RAW`.
    Calibrated,
}

/// The TSC frequency and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscFrequency {
    /// Ticks per second.
    pub hz: u64,
    /// Its source.
    pub source: TscSource,
}

/// TSC ticks per second, found once per process (see the module docs) and
/// cached.
pub fn tsc_hz() -> u64 {
    tsc_frequency().hz
}

/// The TSC frequency with its source, found once per process and cached.
pub fn tsc_frequency() -> TscFrequency {
    static FREQ: OnceLock<TscFrequency> = OnceLock::new();
    *FREQ.get_or_init(|| {
        if let Some(f) = from_cpuid() {
            return f;
        }
        let start = START.get().copied().filter(|s| s.ns <= raw_ns());
        let hz = start
            .map(calibrate_from)
            .filter(|hz| (MIN_HZ..=MAX_HZ).contains(hz))
            .unwrap_or_else(|| calibrate_from(stamp()));
        TscFrequency {
            hz,
            source: TscSource::Calibrated,
        }
    })
}

/// The first end of the calibration, if [`start_calibration`] took it.
static START: OnceLock<Stamp> = OnceLock::new();

/// Take the first end of the calibration now (about 100 ns), so that a later
/// [`tsc_hz`] that must calibrate waits only for what is left of
/// [`MIN_CALIBRATION_NS`]. Only the first call counts; calling it after the
/// frequency is known has no effect.
pub fn start_calibration() {
    START.get_or_init(stamp);
}

/// A TSC value and the `CLOCK_MONOTONIC_RAW` time it was read at, within
/// `± half_width` ns.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    tsc: u64,
    ns: u64,
    half_width: u64,
}

/// `CLOCK_MONOTONIC_RAW` in nanoseconds.
fn raw_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC_RAW exists on
    // every Linux this runtime supports (2.6.28 on).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_RAW, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The resolution of `CLOCK_MONOTONIC_RAW` in nanoseconds (at least 1).
fn raw_resolution_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    let r = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_RAW, &mut ts) };
    if r != 0 {
        return 1_000_000; // Unknown: assume a coarse clock.
    }
    (ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64).max(1)
}

/// The TSC bracketed by two clock reads; the tightest of four tries.
fn stamp() -> Stamp {
    let mut best = Stamp {
        tsc: 0,
        ns: 0,
        half_width: u64::MAX,
    };
    for _ in 0..4 {
        let t0 = raw_ns();
        // SAFETY: LFENCE (SSE2, baseline on x86_64) keeps RDTSC from being
        // executed before the clock read above or after the one below.
        let tsc = unsafe {
            core::arch::x86_64::_mm_lfence();
            let c = core::arch::x86_64::_rdtsc();
            core::arch::x86_64::_mm_lfence();
            c
        };
        let t1 = raw_ns();
        let half = t1.saturating_sub(t0).div_ceil(2);
        if half < best.half_width {
            best = Stamp {
                tsc,
                ns: t0 + t1.saturating_sub(t0) / 2,
                half_width: half,
            };
        }
    }
    best
}

/// Calibrate from the stamp `start`: take stamps until the interval is long
/// enough for [`CALIBRATION_TOLERANCE`] (see the module docs), then return
/// the ticks per second over it.
fn calibrate_from(start: Stamp) -> u64 {
    let resolution = raw_resolution_ns();
    loop {
        let end = stamp();
        let elapsed = end.ns.saturating_sub(start.ns);
        let uncertainty = start.half_width + end.half_width + resolution;
        let precise = uncertainty as f64 <= CALIBRATION_TOLERANCE * elapsed as f64;
        if elapsed >= MAX_CALIBRATION_NS || (elapsed >= MIN_CALIBRATION_NS && precise) {
            let ticks = end.tsc.wrapping_sub(start.tsc);
            return u64::try_from(ticks as u128 * 1_000_000_000 / elapsed.max(1) as u128)
                .unwrap_or(u64::MAX);
        }
        std::hint::spin_loop();
    }
}

/// `CPUID` leaf `leaf`, subleaf 0: `[eax, ebx, ecx, edx]`.
fn cpuid(leaf: u32) -> [u32; 4] {
    // CPUID exists on every x86_64 CPU; a leaf above the maximum returns
    // data, never faults (callers check the maximum first).
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// The 12 bytes of `words` as little-endian `u32`s in that order.
fn bytes12(words: [u32; 3]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for (i, w) in words.into_iter().enumerate() {
        s[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    s
}

/// The CPU vendor of leaf 0 (`EBX, EDX, ECX`: "GenuineIntel").
fn vendor(r: [u32; 4]) -> [u8; 12] {
    bytes12([r[1], r[3], r[2]])
}

/// The hypervisor signature of leaf `0x4000_0000` (`EBX, ECX, EDX`).
fn hypervisor_signature(r: [u32; 4]) -> [u8; 12] {
    bytes12([r[1], r[2], r[3]])
}

/// The frequency from CPUID, when the CPU or the hypervisor states it.
fn from_cpuid() -> Option<TscFrequency> {
    let believable = |f: TscFrequency| (MIN_HZ..=MAX_HZ).contains(&f.hz).then_some(f);
    let max_basic = cpuid(0)[0];
    let under_hypervisor = max_basic >= 1 && cpuid(1)[2] & (1 << 31) != 0;
    if under_hypervisor {
        let hv = cpuid(0x4000_0000);
        let known = matches!(
            &hypervisor_signature(hv),
            b"VMwareVMware" | b"KVMKVMKVM\0\0\0"
        );
        if known && hv[0] >= 0x4000_0010 {
            return hypervisor_leaf(cpuid(0x4000_0010)[0]).and_then(believable);
        }
        return None;
    }
    if &vendor(cpuid(0)) != b"GenuineIntel" || max_basic < 0x15 {
        return None;
    }
    let base_mhz = if max_basic >= 0x16 { cpuid(0x16)[0] } else { 0 };
    leaf_15(cpuid(0x15), base_mhz).and_then(believable)
}

/// The frequency from the hypervisor leaf's EAX (TSC kHz); `None` for 0.
fn hypervisor_leaf(khz: u32) -> Option<TscFrequency> {
    (khz != 0).then(|| TscFrequency {
        hz: u64::from(khz) * 1000,
        source: TscSource::HypervisorLeaf,
    })
}

/// The frequency from leaf `0x15` (`[eax, ebx, ecx, _]`: denominator,
/// numerator, crystal Hz) and leaf `0x16`'s base MHz: crystal × numerator /
/// denominator, or the base frequency when the crystal field is 0; `None`
/// when the ratio is not given, or neither the crystal nor the base is.
fn leaf_15(r: [u32; 4], base_mhz: u32) -> Option<TscFrequency> {
    let [denominator, numerator, crystal_hz, _] = r;
    if denominator == 0 || numerator == 0 {
        return None;
    }
    if crystal_hz != 0 {
        return Some(TscFrequency {
            hz: u64::from(crystal_hz) * u64::from(numerator) / u64::from(denominator),
            source: TscSource::CpuidCrystal,
        });
    }
    (base_mhz != 0).then(|| TscFrequency {
        hz: u64::from(base_mhz) * 1_000_000,
        source: TscSource::CpuidBase,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// TSC ticks per second over `d`, measured with `Instant` (the
    /// slewed `CLOCK_MONOTONIC`) independently of this module.
    fn measure(d: Duration) -> f64 {
        let (t0, c0) = (Instant::now(), rdtsc());
        std::thread::sleep(d);
        let (c1, t1) = (rdtsc(), Instant::now());
        (c1 - c0) as f64 / (t1 - t0).as_secs_f64()
    }

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b
    }

    #[test]
    fn the_frequency_agrees_with_a_measurement() {
        let f = tsc_frequency();
        // Retry the measurement: a sleep may be descheduled between the
        // clock and the TSC read, which inflates one try only.
        let ok = (0..5).any(|_| close(f.hz as f64, measure(Duration::from_millis(50)), 0.02));
        assert!(ok, "{f:?} is not within 2% of a 50 ms measurement");
    }

    #[test]
    fn a_calibration_agrees_with_a_measurement_and_is_short() {
        let t = Instant::now();
        let hz = calibrate_from(stamp());
        let took = t.elapsed();
        eprintln!(
            "calibrated {hz} Hz in {took:?}; frequency {:?}",
            tsc_frequency()
        );
        assert!(
            took < Duration::from_millis(25),
            "calibration took {took:?}"
        );
        let ok = (0..5).any(|_| close(hz as f64, measure(Duration::from_millis(50)), 0.01));
        assert!(
            ok,
            "calibrated {hz} Hz is not within 1% of a 50 ms measurement"
        );
    }

    #[test]
    fn a_calibration_from_an_early_stamp_waits_only_for_the_rest() {
        let start = stamp();
        std::thread::sleep(Duration::from_millis(2));
        let t = Instant::now();
        let hz = calibrate_from(start);
        // Far more than MIN_CALIBRATION_NS has passed: at most a few
        // stamps are taken (unless the machine is too busy to take a tight
        // one, when the 20 ms bound applies).
        assert!(t.elapsed() < Duration::from_millis(25));
        assert!((MIN_HZ..=MAX_HZ).contains(&hz), "{hz}");
    }

    #[test]
    fn leaf_15_gives_crystal_times_ratio_or_the_base_frequency() {
        // A 24 MHz crystal and ratio 216/2: 2.592 GHz.
        assert_eq!(
            leaf_15([2, 216, 24_000_000, 0], 2600),
            Some(TscFrequency {
                hz: 2_592_000_000,
                source: TscSource::CpuidCrystal
            })
        );
        // No crystal: the base frequency of leaf 0x16.
        assert_eq!(
            leaf_15([2, 216, 0, 0], 2600),
            Some(TscFrequency {
                hz: 2_600_000_000,
                source: TscSource::CpuidBase
            })
        );
        assert_eq!(leaf_15([2, 216, 0, 0], 0), None);
        assert_eq!(leaf_15([0, 216, 24_000_000, 0], 2600), None);
        assert_eq!(leaf_15([2, 0, 24_000_000, 0], 2600), None);
        assert_eq!(
            hypervisor_leaf(2_596_122).map(|f| f.hz),
            Some(2_596_122_000)
        );
        assert_eq!(hypervisor_leaf(0), None);
    }

    #[test]
    fn vendor_and_hypervisor_signatures_read_their_registers_in_order() {
        // Leaf 0 of an Intel CPU: "Genu" in EBX, "ineI" in EDX, "ntel" in ECX.
        let r = [0x16, 0x756e_6547, 0x6c65_746e, 0x4965_6e69];
        assert_eq!(&vendor(r), b"GenuineIntel");
        // KVM's leaf 0x4000_0000: "KVMK" "VMKV" "M\0\0\0" in EBX, ECX, EDX.
        let r = [0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x0000_004d];
        assert_eq!(&hypervisor_signature(r), b"KVMKVMKVM\0\0\0");
    }
}
