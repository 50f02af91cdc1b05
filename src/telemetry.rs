//! Logging set-up: pretty on a terminal, plain lines under systemd, JSON otherwise.
//!
//! Under systemd (`JOURNAL_STREAM` set) lines carry no ANSI colours and no timestamp,
//! because journald stamps every line itself. `RUST_LOG`, when set, wins over
//! `log.level`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// The format `log.format` asks for, or the one that suits where stderr goes.
pub fn effective_format(settings: &LogSettings) -> LogFormat {
    settings.format.unwrap_or_else(|| {
        if std::env::var_os("JOURNAL_STREAM").is_some() {
            LogFormat::Plain
        } else if std::io::stderr().is_terminal() {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        }
    })
}

/// Installs the global subscriber; later calls are no-ops (tests call it repeatedly).
pub fn init(settings: &LogSettings) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        // PostgreSQL NOTICEs ("relation already exists, skipping") are not news.
        .unwrap_or_else(|| EnvFilter::new(format!("{},sqlx=warn", settings.level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // stderr, around a progress bar if one is on screen.
        .with_writer(crate::ops::progress::LogWriter);
    let _ = match effective_format(settings) {
        LogFormat::Pretty => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Plain => builder
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .try_init(),
    };
}
