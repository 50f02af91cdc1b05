//! Logging set-up: pretty on a terminal, plain lines under systemd, JSON otherwise.
//!
//! Under systemd (`JOURNAL_STREAM` set) lines carry no ANSI colours and no timestamp,
//! because journald stamps every line itself. `RUST_LOG`, when set, wins over
//! `log.level`.

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// The format `log.format` asks for, or the one that suits where stderr goes.
pub(crate) fn effective_format(settings: &LogSettings) -> LogFormat {
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

/// Swaps the installed subscriber's filter (the handle's type depends on the format).
type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// The text formats' writer: each event is one line. A message quoting outside text
/// (an ICE error, a project field) with a newline or carriage return would otherwise
/// forge a line of its own, and journald takes each line as an entry. JSON needs no
/// help: its strings escape control characters.
#[derive(Clone, Copy)]
struct OneLine {
    /// The coloured terminal format's own escapes stay.
    keep_esc: bool,
}

impl std::io::Write for OneLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    // The formatter hands over each event whole, in one call.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        crate::ops::progress::LogWriter.write_all(&crate::text::one_line_bytes(buf, self.keep_esc))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        crate::ops::progress::LogWriter.flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for OneLine {
    type Writer = OneLine;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// Where sqlx-postgres parses connect options (and may log their values).
const DRIVER_OPTIONS_TARGET: &str = "sqlx_postgres::options";

static SET_FILTER: OnceLock<SetFilter> = OnceLock::new();

fn filter_for(level: &str) -> EnvFilter {
    // PostgreSQL NOTICEs ("relation already exists, skipping") are not news.
    EnvFilter::new(format!("{level},sqlx=warn"))
}

/// Under systemd, each plain line starts with its syslog priority (`<3>` error, `<4>`
/// warning, `<6>` info, `<7>` debug and trace; sd-daemon(3)): journald strips the prefix
/// and stores the priority, so `journalctl -p warning` finds warnings and errors.
struct JournalPriority<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for JournalPriority<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Installs the global subscriber; later calls are no-ops (tests call it repeatedly).
pub fn init(settings: &LogSettings) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{fmt, reload, Layer, Registry};

    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| filter_for(&settings.level));
    // The filter sits in a reload layer, so SIGHUP can change `log.level`.
    let (filter, handle) = reload::Layer::new(filter);
    type Filtered =
        tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>;
    // stderr, around a progress bar if one is on screen; text lines one line each.
    let base = fmt::layer().with_writer(crate::ops::progress::LogWriter);
    let format: Box<dyn Layer<Filtered> + Send + Sync> = match effective_format(settings) {
        LogFormat::Pretty => fmt::layer()
            .with_writer(OneLine { keep_esc: true })
            .with_target(false)
            .boxed(),
        LogFormat::Json => base
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed(),
        LogFormat::Plain if std::env::var_os("JOURNAL_STREAM").is_some() => fmt::layer()
            .with_writer(OneLine { keep_esc: false })
            .with_ansi(false)
            .event_format(JournalPriority(
                fmt::format()
                    .with_ansi(false)
                    .without_time()
                    .with_target(false),
            ))
            .boxed(),
        LogFormat::Plain => fmt::layer()
            .with_writer(OneLine { keep_esc: false })
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .boxed(),
    };
    // sqlx-postgres logs each connect parameter it does not know, and lines of a
    // `.pgpass` file it cannot read, with their values (`sslpassword=...`). Its option
    // parsing never logs anything else, so those events are dropped whatever the level
    // or `RUST_LOG` says; `storage::postgres` names the unknown keys (no values) itself.
    let format = format.with_filter(tracing_subscriber::filter::filter_fn(|meta| {
        !meta.target().starts_with(DRIVER_OPTIONS_TARGET)
    }));
    if tracing_subscriber::registry()
        .with(filter)
        .with(format)
        .try_init()
        .is_ok()
    {
        let _ = SET_FILTER.set(Box::new(move |f| {
            handle.reload(f).map_err(|e| e.to_string())
        }));
    }
}

/// Applies a reloaded `log.level`; `RUST_LOG`, when set, keeps winning.
pub(crate) fn set_level(level: &str) -> Result<(), String> {
    if std::env::var_os("RUST_LOG").is_some() {
        return Err("RUST_LOG is set and wins over log.level".to_string());
    }
    match SET_FILTER.get() {
        Some(set) => set(filter_for(level)),
        None => Err("logging is not set up".to_string()),
    }
}
