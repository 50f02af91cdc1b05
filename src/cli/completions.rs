//! `ice-sync completions SHELL` and the hidden `ice-sync manpage`: generated from the
//! same clap definition as the parser, so they never drift from the commands.
//! scripts/package-assets writes both into target/assets for the `.deb`.

use std::io::Write;

use clap::CommandFactory;

use super::Cli;

pub(crate) fn print(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    // Into memory first: clap_complete panics on a write error (a closed pipe).
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ice-sync", &mut text);
    let mut out = super::output::stdout();
    out.write_all(&text)?;
    out.flush()?;
    Ok(0)
}

pub(crate) fn manpage() -> anyhow::Result<u8> {
    let mut out = super::output::stdout();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    out.flush()?;
    Ok(0)
}
