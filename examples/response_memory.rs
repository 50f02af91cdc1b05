//! Peak RSS of `ice-sync run --once` fetching 16 projects with 30 MiB timelines at
//! `sync.concurrency = 16` (issue 20: in-flight answers are bounded by one budget, not
//! by concurrency x `ice.max_response_bytes`). Prints the child's peak RSS.
//!
//! `cargo run --example response_memory -- [path/to/ice-sync] [projects] [MiB]`
//! (the binary defaults to target/release/ice-sync; compare two builds with the same
//! profile).

use std::process::Command;

use ice_sync::simulator::{Simulator, SimulatorConfig};

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
    let mut cmd = Command::new(&binary);
    cmd.args(["run", "--once"])
        .env_clear()
        .env("ICE_SYNC__DATABASE__URL", &db)
        .env("ICE_SYNC__ICE__ENDPOINT", sim.endpoint())
        .env("ICE_SYNC__ICE__ACCESS_KEY_ID", &cfg.access_key_id)
        .env("ICE_SYNC__ICE__ACCESS_KEY_SECRET", &cfg.access_key_secret)
        .env("ICE_SYNC__ICE__TIMEOUT", "120s")
        .env("ICE_SYNC__SYNC__MAX_QPS", "0")
        .env("ICE_SYNC__SYNC__CONCURRENCY", projects.to_string())
        .env("ICE_SYNC__SYNC__PROJECTS", ids.join(","));
    let status = tokio::task::spawn_blocking(move || cmd.status()).await??;
    // SAFETY: getrusage fills the struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    println!(
        "{projects} projects x {mib} MiB, concurrency {projects}: exit {:?}, peak RSS {} MiB ({binary})",
        status.code(),
        usage.ru_maxrss / 1024
    );
    Ok(())
}
