//! Peak RSS of `ice-sync run --once` fetching N projects with large timelines at
//! `sync.concurrency = N` (issue 20: the projects a process holds are bounded by one
//! in-flight budget, not by concurrency x `ice.max_response_bytes`). Prints the peak.
//!
//! `cargo run --release --example response_memory -- [path/to/ice-sync] [projects] [MiB]`
//! (the binary defaults to target/release/ice-sync; compare two builds with the same
//! profile).
//!
//! The peak is the child's own `VmHWM` (Linux), read until it exits. Not
//! `getrusage(RUSAGE_CHILDREN)`: a spawned child starts as a copy of this process, whose
//! simulator holds every inflated project, and that copy's size is counted as the
//! child's maximum (600 MiB "measured" for a daemon that never passed 260).

use std::process::Command;
use std::time::Duration;

use ice_sim::{Simulator, SimulatorConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = args
        .next()
        .unwrap_or_else(|| "target/release/ice-sync".to_string());
    let projects: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(16);
    let mib: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(30);
    let sim = Simulator::start(SimulatorConfig::default()).await?;
    let ids = sim.populate(projects, 0);
    for id in &ids {
        sim.inflate(id, mib << 20);
    }
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    let cfg = SimulatorConfig::default();
    let mut child = Command::new(&binary)
        .args(["run", "--once"])
        .env_clear()
        .env("ICE_SYNC__DATABASE__URL", &db)
        .env("ICE_SYNC__ICE__ENDPOINT", sim.endpoint())
        .env("ICE_SYNC__ICE__ACCESS_KEY_ID", &cfg.access_key_id)
        .env("ICE_SYNC__ICE__ACCESS_KEY_SECRET", &cfg.access_key_secret)
        .env("ICE_SYNC__ICE__TIMEOUT", "300s")
        .env("ICE_SYNC__LOG__LEVEL", "warn")
        .env("ICE_SYNC__SYNC__MAX_QPS", "0")
        .env("ICE_SYNC__SYNC__CONCURRENCY", projects.to_string())
        .env("ICE_SYNC__SYNC__PROJECTS", ids.join(","))
        .spawn()?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let started = std::time::Instant::now();
    let status = loop {
        // The high-water mark only grows, so a read just before exit sees the peak.
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "{projects} projects x {mib} MiB, concurrency {projects}: exit {:?} after {:.1} s, peak RSS {} MiB ({binary})",
        status.code(),
        started.elapsed().as_secs_f64(),
        peak_kib / 1024
    );
    Ok(())
}
