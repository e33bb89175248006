//! The stress report: what is printed, `summary.json` and `.hgrm` files.

use myriad_scheduler::metrics::{hgrm, HISTOGRAMS};
use myriad_scheduler::{Metrics, Summary};
use std::fmt::Write as _;
use std::path::Path;

/// Everything a stress run measured.
pub struct StressReport {
    pub instances: usize,
    pub workers: usize,
    pub quantum_ns: u64,
    /// Fuel mode: units per slice (time slices of `quantum_ns` if `None`).
    pub fuel_per_slice: Option<u64>,
    pub duration_s: f64,
    pub guest: String,
    pub spawn_s: f64,
    pub rss_bytes: u64,
    pub rss_baseline_bytes: u64,
    pub rss_per_instance_bytes: f64,
    pub mappings: usize,
    pub slices: u64,
    pub slices_per_sec: f64,
    pub guest_cpu_share: f64,
    pub slices_per_instance: (u64, u64, u64),
    pub instances_run: u64,
    pub finished: u64,
    pub trapped: u64,
    pub cancelled: u64,
    pub checked_ok: u64,
    pub checked_bad: u64,
    pub steals: u64,
    pub metrics: Metrics,
}

fn kib(b: f64) -> String {
    format!("{:.2} KiB", b / 1024.0)
}

impl StressReport {
    /// The human-readable report.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let slicing = match self.fuel_per_slice {
            Some(units) => format!("fuel slices of {units} units"),
            None => format!("quantum {} ns", self.quantum_ns),
        };
        let _ = writeln!(
            s,
            "== myriad stress: {} x {} guest, {} workers, {slicing}, {:.2} s ==",
            self.instances, self.guest, self.workers, self.duration_s
        );
        let _ = writeln!(
            s,
            "spawn            {:.3} s ({:.0} instances/s)",
            self.spawn_s,
            self.instances as f64 / self.spawn_s.max(1e-9)
        );
        let _ = writeln!(
            s,
            "rss              {:.1} MiB total, {} per instance (above a {:.1} MiB baseline)",
            self.rss_bytes as f64 / 1048576.0,
            kib(self.rss_per_instance_bytes),
            self.rss_baseline_bytes as f64 / 1048576.0
        );
        let _ = writeln!(s, "mappings         {}", self.mappings);
        let _ = writeln!(
            s,
            "slices           {} ({:.0}/s), steals {}",
            self.slices, self.slices_per_sec, self.steals
        );
        let _ = writeln!(s, "guest cpu share  {:.1} %", self.guest_cpu_share * 100.0);
        let (mn, md, mx) = self.slices_per_instance;
        let _ = writeln!(
            s,
            "slices/instance  min {mn}, median {md}, max {mx}; {} of {} instances ran",
            self.instances_run, self.instances
        );
        let _ = writeln!(s, "ended            {} finished, {} trapped, {} cancelled; results checked: {} ok, {} wrong",
            self.finished, self.trapped, self.cancelled, self.checked_ok, self.checked_bad);
        let _ = writeln!(
            s,
            "\n{:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}   (ns)",
            "histogram", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        for name in HISTOGRAMS {
            let h = Summary::of(self.metrics.histogram(name));
            let _ = writeln!(
                s,
                "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}",
                name, h.count, h.p50, h.p90, h.p99, h.p999, h.max
            );
        }
        s
    }

    /// The JSON summary (schema in docs/REPORT.md).
    pub fn json(&self) -> String {
        let mut s = String::from("{\n");
        let _ = writeln!(s, "  \"instances\": {},", self.instances);
        let _ = writeln!(s, "  \"workers\": {},", self.workers);
        let _ = writeln!(s, "  \"quantum_ns\": {},", self.quantum_ns);
        match self.fuel_per_slice {
            Some(units) => {
                let _ = writeln!(s, "  \"fuel_per_slice\": {units},");
            }
            None => {
                let _ = writeln!(s, "  \"fuel_per_slice\": null,");
            }
        }
        let _ = writeln!(s, "  \"duration_s\": {:.6},", self.duration_s);
        let _ = writeln!(s, "  \"guest\": \"{}\",", escape(&self.guest));
        let _ = writeln!(s, "  \"spawn_s\": {:.6},", self.spawn_s);
        let _ = writeln!(s, "  \"rss_bytes\": {},", self.rss_bytes);
        let _ = writeln!(s, "  \"rss_baseline_bytes\": {},", self.rss_baseline_bytes);
        let _ = writeln!(
            s,
            "  \"rss_per_instance_bytes\": {:.1},",
            self.rss_per_instance_bytes
        );
        let _ = writeln!(s, "  \"mappings\": {},", self.mappings);
        let _ = writeln!(s, "  \"slices\": {},", self.slices);
        let _ = writeln!(s, "  \"slices_per_sec\": {:.1},", self.slices_per_sec);
        let _ = writeln!(s, "  \"guest_cpu_share\": {:.4},", self.guest_cpu_share);
        let (mn, md, mx) = self.slices_per_instance;
        let _ = writeln!(
            s,
            "  \"slices_per_instance\": {{\"min\": {mn}, \"p50\": {md}, \"max\": {mx}}},"
        );
        let _ = writeln!(s, "  \"instances_run\": {},", self.instances_run);
        let _ = writeln!(s, "  \"steals\": {},", self.steals);
        let _ = writeln!(s, "  \"finished\": {},", self.finished);
        let _ = writeln!(s, "  \"trapped\": {},", self.trapped);
        let _ = writeln!(s, "  \"cancelled\": {},", self.cancelled);
        let _ = writeln!(s, "  \"results_ok\": {},", self.checked_ok);
        let _ = writeln!(s, "  \"results_wrong\": {},", self.checked_bad);
        s.push_str("  \"histograms_ns\": {\n");
        for (i, name) in HISTOGRAMS.iter().enumerate() {
            let h = Summary::of(self.metrics.histogram(name));
            let comma = if i + 1 < HISTOGRAMS.len() { "," } else { "" };
            let _ = writeln!(s,
                "    \"{name}\": {{\"count\": {}, \"p50\": {}, \"p90\": {}, \"p99\": {}, \"p999\": {}, \"max\": {}}}{comma}",
                h.count, h.p50, h.p90, h.p99, h.p999, h.max);
        }
        s.push_str("  }\n}\n");
        s
    }

    /// Write `summary.json` and one `<name>.hgrm` per histogram into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("summary.json"), self.json())?;
        for name in HISTOGRAMS {
            std::fs::write(
                dir.join(format!("{name}.hgrm")),
                hgrm(self.metrics.histogram(name)),
            )?;
        }
        Ok(())
    }
}

fn escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}
