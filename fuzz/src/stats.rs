//! Counters of a fuzzing run, mergeable across worker processes.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Named counters. Keys are `/`-separated paths such as `skip/imports`
/// or `trap/MemoryOutOfBounds`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters(pub BTreeMap<String, u64>);

fn clean(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c == '\t' || c == '=' || c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect()
}

impl Counters {
    /// Add `n` to `key`.
    pub fn add(&mut self, key: impl AsRef<str>, n: u64) {
        *self.0.entry(clean(key.as_ref())).or_insert(0) += n;
    }

    /// Add 1 to `key`.
    pub fn bump(&mut self, key: impl AsRef<str>) {
        self.add(key, 1);
    }

    /// The value of `key` (0 if never added to).
    pub fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    /// The sum of every key under `prefix/`.
    pub fn sum_under(&self, prefix: &str) -> u64 {
        let p = format!("{prefix}/");
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with(&p))
            .map(|(_, v)| v)
            .sum()
    }

    /// Add every counter of `other`.
    pub fn merge(&mut self, other: &Counters) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_insert(0) += v;
        }
    }

    /// One line: `key=value` pairs separated by tabs.
    pub fn encode(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.join("\t")
    }

    /// The inverse of [`Counters::encode`].
    pub fn decode(line: &str) -> Counters {
        let mut c = Counters::default();
        for part in line.split('\t') {
            if let Some((k, v)) = part.rsplit_once('=') {
                if let Ok(v) = v.parse() {
                    c.0.insert(k.to_string(), v);
                }
            }
        }
        c
    }

    /// A human-readable summary, grouped by the first path component.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let mut last_group = "";
        for (k, v) in &self.0 {
            let group = k.split('/').next().unwrap_or("");
            if group != last_group && k.contains('/') {
                let _ = writeln!(out, "  {group}: {}", self.sum_under(group));
            }
            last_group = group;
            if let Some(rest) = k.strip_prefix(&format!("{group}/")) {
                let _ = writeln!(out, "    {rest}: {v}");
            } else {
                let _ = writeln!(out, "  {k}: {v}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_merge() {
        let mut a = Counters::default();
        a.bump("modules");
        a.add("skip/Myriad: unsupported: x=y", 3);
        let b = Counters::decode(&a.encode());
        assert_eq!(a, b);
        a.merge(&b);
        assert_eq!(a.get("modules"), 2);
        assert_eq!(a.sum_under("skip"), 6);
    }
}
