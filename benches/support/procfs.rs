//! Readings of `/proc` for a process: CPU time (`stat`), peak and current resident set
//! and thread count (`status`), bytes written (`io`) and where resident memory sits
//! (`smaps_rollup`). Linux only, like the benchmarks.

use anyhow::Context;

/// `USER_HZ`, the unit of `/proc/PID/stat` times: 100 on every Linux architecture that
/// matters here (without libc there is no `sysconf(_SC_CLK_TCK)` to ask).
const TICKS_PER_SECOND: f64 = 100.0;

/// Which process: this one, or a child by its id.
#[derive(Debug, Clone, Copy)]
pub enum Pid {
    Own,
    Of(u32),
}

impl Pid {
    fn path(self, file: &str) -> String {
        match self {
            Pid::Own => format!("/proc/self/{file}"),
            Pid::Of(pid) => format!("/proc/{pid}/{file}"),
        }
    }
}

/// CPU time of a whole process, all threads, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    pub user: f64,
    pub sys: f64,
}

impl CpuTimes {
    pub fn since(self, before: CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user - before.user,
            sys: self.sys - before.sys,
        }
    }

    pub fn total(self) -> f64 {
        self.user + self.sys
    }

    pub fn add(&mut self, other: CpuTimes) {
        self.user += other.user;
        self.sys += other.sys;
    }
}

/// utime and stime (fields 14 and 15 of `/proc/PID/stat`).
pub fn cpu_times(pid: Pid) -> anyhow::Result<CpuTimes> {
    let path = pid.path("stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Field 2 is the command name in parentheses and may contain spaces: count fields
    // from after its closing parenthesis, where field 3 starts.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("{path} has no command field"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<f64> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|ticks| ticks as f64 / TICKS_PER_SECOND)
            .with_context(|| format!("{path} field {n} is missing or not a number"))
    };
    Ok(CpuTimes {
        user: field(14)?,
        sys: field(15)?,
    })
}

/// A line of `/proc/PID/status` as a number: `VmHWM` (peak resident set, KiB), `VmRSS`
/// (current, KiB), `Threads`.
pub fn status_value(pid: Pid, key: &str) -> anyhow::Result<u64> {
    let path = pid.path("status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    field_value(&status, key).with_context(|| format!("{path} has no readable {key} line"))
}

/// `KEY: VALUE [kB]` in a `/proc` key-value file.
fn field_value(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Bytes the process has passed to `write(2)` and friends (`wchar` of `/proc/PID/io`).
pub fn bytes_written(pid: Pid) -> anyhow::Result<u64> {
    let path = pid.path("io");
    let io = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("{path} has no readable wchar line"))
}

/// Where the resident set is now, in KiB: (anonymous, file-backed) from
/// `/proc/PID/smaps_rollup`. Anonymous memory is the heap and stacks; file-backed is
/// mostly the executable's own pages.
pub fn resident_split(pid: Pid) -> anyhow::Result<(u64, u64)> {
    let path = pid.path("smaps_rollup");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let rss = field_value(&text, "Rss").with_context(|| format!("{path} has no Rss line"))?;
    let anon =
        field_value(&text, "Anonymous").with_context(|| format!("{path} has no Anonymous"))?;
    Ok((anon, rss.saturating_sub(anon)))
}

/// A line of `/proc/meminfo`, in KiB.
pub fn meminfo_kib(key: &str) -> Option<u64> {
    field_value(&std::fs::read_to_string("/proc/meminfo").ok()?, key)
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
