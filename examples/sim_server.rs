//! Runs the built-in ICE simulator on a fixed port, for poking at ice-sync by hand:
//! `cargo run --example sim_server -- 127.0.0.1:18080 [projects]`.
//! Credentials: the simulator defaults (printed at start).

use ice_sim::{Simulator, SimulatorConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18080".to_string())
        .parse()?;
    let projects: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(20);
    let mut config = SimulatorConfig::default();
    if let Ok(token) = std::env::var("SIM_SECURITY_TOKEN") {
        config.security_token = Some(token);
    }
    if let Ok(secret) = std::env::var("SIM_SECRET") {
        config.access_key_secret = secret;
    }
    println!("access key id: {}", config.access_key_id);
    let sim = Simulator::start_on(addr, config).await?;
    for id in sim.populate(projects, 0) {
        println!("{id}");
    }
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
