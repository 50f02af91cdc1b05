//! The `ice-sync` binary: parse the command line, run the command, map the result to
//! an exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use ice_sync::cli::{self, Cli, Exit};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line, the whole cause chain: what failed and why.
            eprintln!("error: {e:#}");
            let code = e.downcast_ref::<Exit>().map_or(1, |x| x.code);
            ExitCode::from(code)
        }
    }
}
