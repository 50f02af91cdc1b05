//! What the benchmarks share: the simulator in a process of its own ([`sim`]), the bare
//! signed-HTTP floor ([`bare`]) and readings of `/proc` ([`procfs`]).
//!
//! Each benchmark binary compiles this module on its own and uses a different part of it.
#![allow(dead_code)]

pub mod bare;
pub mod procfs;
pub mod sim;

/// `N × CPU model`, for the heading of a report.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let memory = procfs::meminfo_kib("MemTotal")
        .map(|kib| format!(", {:.0} GiB", kib as f64 / (1024.0 * 1024.0)))
        .unwrap_or_default();
    format!("{cpus} × {model}{memory}")
}

/// Markdown cells must not contain line breaks or pipes.
pub fn one_line(s: &str) -> String {
    s.replace(['\n', '|'], " ")
}

pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}
