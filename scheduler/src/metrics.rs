//! Scheduler metrics: per-worker HdrHistograms merged at report time.
//!
//! All histograms hold nanoseconds. Workers convert TSC cycles with a
//! fixed-point multiply ([`TscToNs`]) so recording stays a few nanoseconds.

use hdrhistogram::Histogram;
use std::fmt::Write as _;

/// Converts TSC cycles to nanoseconds with one multiply and shift.
#[derive(Clone, Copy, Debug)]
pub struct TscToNs {
    mul: u64,
}

impl TscToNs {
    /// For a TSC running at `hz` cycles per second.
    pub fn new(hz: u64) -> TscToNs {
        TscToNs {
            mul: ((1_000_000_000u128 << 32) / u128::from(hz.max(1))) as u64,
        }
    }

    /// `cycles` in nanoseconds.
    #[inline]
    pub fn ns(self, cycles: u64) -> u64 {
        ((u128::from(cycles) * u128::from(self.mul)) >> 32) as u64
    }
}

/// Names of the histograms, in report order.
pub const HISTOGRAMS: [&str; 6] = [
    "slice",
    "overrun",
    "switch",
    "gap",
    "instantiate",
    "teardown",
];

fn new_histogram() -> Histogram<u64> {
    // 1 ns .. 1 hour at 3 significant figures. The bounds are constants, so
    // creation cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("constant histogram bounds")
}

/// Counters and histograms of one worker (or several merged).
#[derive(Clone)]
pub struct Metrics {
    /// Slice length: switch in to switch back, as seen by the worker.
    pub slice: Histogram<u64>,
    /// Deadline to the moment the worker regained control (yielded slices).
    pub overrun: Histogram<u64>,
    /// The guest's last deadline check to the worker regaining control:
    /// the cost of switching out (yielded slices).
    pub switch: Histogram<u64>,
    /// End of one slice of an instance to the start of its next one.
    pub gap: Histogram<u64>,
    /// Instantiate (slot, vmctx, data segments, stack frame).
    pub instantiate: Histogram<u64>,
    /// Teardown (zero dirtied heap, return slot).
    pub teardown: Histogram<u64>,
    /// Slices run.
    pub slices: u64,
    /// Nanoseconds spent in guest code (slice start to the guest's last
    /// deadline check, or to its return).
    pub guest_ns: u64,
    /// Tasks taken from another worker's queue.
    pub steals: u64,
    /// Instances that finished, trapped or were cancelled here.
    pub finished: u64,
    /// Of those, trapped.
    pub trapped: u64,
    /// Of those, cancelled.
    pub cancelled: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            slice: new_histogram(),
            overrun: new_histogram(),
            switch: new_histogram(),
            gap: new_histogram(),
            instantiate: new_histogram(),
            teardown: new_histogram(),
            slices: 0,
            guest_ns: 0,
            steals: 0,
            finished: 0,
            trapped: 0,
            cancelled: 0,
        }
    }
}

impl Metrics {
    /// Add `other`'s counts into `self`.
    pub fn merge(&mut self, other: &Metrics) {
        for name in HISTOGRAMS {
            // Same bounds everywhere, so addition cannot fail.
            let _ = self.histogram_mut(name).add(other.histogram(name));
        }
        self.slices += other.slices;
        self.guest_ns += other.guest_ns;
        self.steals += other.steals;
        self.finished += other.finished;
        self.trapped += other.trapped;
        self.cancelled += other.cancelled;
    }

    /// The histogram called `name` (one of [`HISTOGRAMS`]).
    pub fn histogram(&self, name: &str) -> &Histogram<u64> {
        match name {
            "slice" => &self.slice,
            "overrun" => &self.overrun,
            "switch" => &self.switch,
            "gap" => &self.gap,
            "instantiate" => &self.instantiate,
            _ => &self.teardown,
        }
    }

    fn histogram_mut(&mut self, name: &str) -> &mut Histogram<u64> {
        match name {
            "slice" => &mut self.slice,
            "overrun" => &mut self.overrun,
            "switch" => &mut self.switch,
            "gap" => &mut self.gap,
            "instantiate" => &mut self.instantiate,
            _ => &mut self.teardown,
        }
    }
}

/// The percentiles a report shows for one histogram, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
}

impl Summary {
    /// Summarise `h`.
    pub fn of(h: &Histogram<u64>) -> Summary {
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// `h` in HdrHistogram's percentile-distribution text format (`.hgrm`),
/// values in nanoseconds.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let inv = if q < 1.0 {
                format!("{:>14.2}", 1.0 / (1.0 - q))
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "{:>12.3} {:>14.12} {:>10} {}",
                v.value_iterated_to() as f64,
                q,
                total,
                inv
            );
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean(),
        h.stdev()
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64,
        h.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsc_conversion_is_exact_enough() {
        let c = TscToNs::new(2_000_000_000);
        assert_eq!(c.ns(2_000), 1_000);
        let c = TscToNs::new(3_000_000_000);
        assert!((c.ns(3_000_000) as i64 - 1_000_000).abs() <= 1);
    }

    #[test]
    fn summaries_and_merge() {
        let mut a = Metrics::default();
        let mut b = Metrics::default();
        for v in 1..=100 {
            a.slice.record(v).unwrap();
            b.slice.record(v + 100).unwrap();
        }
        a.slices = 100;
        b.slices = 100;
        a.merge(&b);
        let s = Summary::of(&a.slice);
        assert_eq!(s.count, 200);
        assert_eq!(s.max, 200);
        assert!((99..=101).contains(&s.p50), "{s:?}");
        assert_eq!(a.slices, 200);
        let text = hgrm(&a.slice);
        assert!(text.contains("Total count    =          200"), "{text}");
    }
}
