//! Showing long work while it runs, from a [`CycleProgress`]: a live bar on a terminal
//! (`indicatif`), a log line at a steady interval off one, and the systemd status text
//! (`systemctl status`: "cycle 42%: 2,100/5,000 polled, ETA 2m") under systemd.
//!
//! [`start`] spawns one task that reads the progress a few times a second and renders
//! what [`Show`] asks for; [`Display::stop`] ends it and leaves the finished bar on
//! screen. The cycle itself only bumps counters, so a slow terminal never slows a cycle.
//! Any job that reports through a `CycleProgress` can be shown this way: a later
//! `refresh --all` needs only its own [`Show::label`].
//!
//! [`StatusLine`] serialises the status text: a progress update racing the end of the
//! cycle must never overwrite the "last cycle ..." text the scheduler hook sets.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::sync::{CycleProgress, ProgressSnapshot};

use super::notify::Notifier;

/// How often a running cycle logs its progress off a terminal. A cycle shorter than
/// this logs nothing beyond its summary.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Overrides [`LOG_INTERVAL`] (a humantime duration such as `500ms`): for tests, and
/// for operators who want a denser or sparser journal.
pub(crate) const LOG_INTERVAL_ENV: &str = "ICE_SYNC_PROGRESS_INTERVAL";

/// How often the systemd status text follows a running cycle.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// How often the bar is redrawn from the counters.
const BAR_EVERY: Duration = Duration::from_millis(100);

/// `track import` shows a bar from this many IDs on.
pub(crate) const IMPORT_BAR_MIN: usize = 1000;

/// [`LOG_INTERVAL`], or what `ICE_SYNC_PROGRESS_INTERVAL` says (100 ms to a day).
pub(crate) fn log_interval() -> Duration {
    log_interval_from(std::env::var(LOG_INTERVAL_ENV).ok().as_deref())
}

fn log_interval_from(value: Option<&str>) -> Duration {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => LOG_INTERVAL,
        Some(v) => match humantime::parse_duration(v) {
            // At most a day: timers add it to `Instant::now()`, which would overflow.
            Ok(d) => d.clamp(Duration::from_millis(100), Duration::from_secs(24 * 3600)),
            Err(e) => {
                tracing::warn!(
                    "{LOG_INTERVAL_ENV}={v:?} is not a duration ({e}); logging progress every {}",
                    humantime::format_duration(LOG_INTERVAL)
                );
                LOG_INTERVAL
            }
        },
    }
}

/// `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration the way a person reads an ETA: `45s`, `2m`, `1h 20m`.
pub(crate) fn short_duration(d: Duration) -> String {
    let secs = d.as_secs_f64().round() as u64;
    if secs < 90 {
        format!("{secs}s")
    } else if secs < 90 * 60 {
        format!("{}m", (secs + 30) / 60)
    } else {
        let minutes = (secs + 30) / 60;
        format!("{}h {}m", minutes / 60, minutes % 60)
    }
}

fn rate_text(per_second: f64) -> String {
    if per_second >= 10.0 {
        format!("{}/s", thousands(per_second.round() as u64))
    } else {
        format!("{per_second:.1}/s")
    }
}

/// systemd's status text: `cycle 42%: 2,100/5,000 polled, ETA 2m`.
pub(crate) fn status_text(label: &str, s: &ProgressSnapshot) -> String {
    match (s.total, s.percent()) {
        (Some(total), Some(percent)) => {
            let mut text = format!(
                "{label} {percent}%: {}/{} polled",
                thousands(s.polled),
                thousands(total)
            );
            if let Some(eta) = s.eta() {
                text.push_str(&format!(", ETA {}", short_duration(eta)));
            }
            text
        }
        _ => format!(
            "{label}: {} polled, {}",
            thousands(s.polled),
            rate_text(s.rate())
        ),
    }
}

/// The periodic log line: the status text plus the rate.
pub(crate) fn log_text(label: &str, s: &ProgressSnapshot) -> String {
    match s.total {
        Some(_) => format!("{}, {}", status_text(label, s), rate_text(s.rate())),
        None => status_text(label, s),
    }
}

/// The one place that sets the systemd status text.
#[derive(Debug)]
pub(crate) struct StatusLine {
    notifier: Notifier,
    lock: Mutex<()>,
}

impl StatusLine {
    pub(crate) fn new(notifier: Notifier) -> Self {
        Self {
            notifier,
            lock: Mutex::new(()),
        }
    }

    pub(crate) fn set(&self, text: &str) {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.notifier.status(text);
    }

    /// Sets `text` unless `still` says it is out of date, deciding under the same lock
    /// [`StatusLine::set`] takes, so a late progress text never follows the final one.
    fn set_if(&self, text: &str, still: impl FnOnce() -> bool) {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if still() {
            self.notifier.status(text);
        }
    }
}

/// What to render.
#[derive(Debug, Clone)]
pub(crate) struct Show {
    /// What the work is called in every rendering: `cycle`, later `refresh`.
    pub(crate) label: &'static str,
    /// Draw a bar on stderr.
    pub(crate) bar: bool,
    /// Log a line at this interval while the work runs.
    pub(crate) log_every: Option<Duration>,
    /// Follow the work in systemd's status text.
    pub(crate) status: Option<Arc<StatusLine>>,
}

impl Show {
    /// A command run by a person (`run --once`): a bar on a terminal, else log lines.
    pub(crate) fn for_command(label: &'static str) -> Self {
        let terminal = std::io::stderr().is_terminal();
        Self {
            label,
            bar: terminal,
            log_every: (!terminal).then(log_interval),
            status: None,
        }
    }

    /// The daemon: log lines (its output is a journal or a log file, a bar has no
    /// place there) and the systemd status text.
    pub(crate) fn for_daemon(status: Arc<StatusLine>) -> Self {
        Self {
            label: "cycle",
            bar: false,
            log_every: Some(log_interval()),
            status: Some(status),
        }
    }
}

/// The running renderer; [`Display::stop`] ends it.
pub(crate) struct Display {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Display {
    /// Stops rendering; a bar is left on screen with the final counts.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Starts rendering `progress` as `show` asks, until [`Display::stop`].
pub(crate) fn start(progress: Arc<CycleProgress>, show: Show) -> Display {
    let stop = CancellationToken::new();
    let task = tokio::spawn(render(progress, show, stop.clone()));
    Display { stop, task }
}

/// The shortest period any of the renderings needs.
fn tick_of(show: &Show) -> Duration {
    let mut tick = STATUS_EVERY;
    if show.bar {
        tick = tick.min(BAR_EVERY);
    }
    if let Some(every) = show.log_every {
        // Log lines land within a tenth of the interval of when they are due.
        tick = tick.min((every / 10).max(Duration::from_millis(20)));
    }
    tick
}

async fn render(progress: Arc<CycleProgress>, show: Show, stop: CancellationToken) {
    // Cycles count their total only while someone watches.
    let _watch = progress.watch();
    let mut ticks = tokio::time::interval(tick_of(&show));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seen = 0u64;
    let mut logged = 0u32;
    let mut bar: Option<ProgressBar> = None;
    let mut last_status = String::new();
    let mut last_status_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => break,
        }
        let s = progress.snapshot();
        if s.generation == 0 {
            continue;
        }
        if s.generation != seen {
            seen = s.generation;
            logged = 0;
            if let Some(old) = bar.take() {
                take_off_screen(&old);
            }
            if show.bar {
                let new = new_bar(show.label, s.total);
                put_on_screen(&new);
                bar = Some(new);
            }
        }
        if let Some(bar) = &bar {
            update_bar(bar, &s);
        }
        if !s.running {
            continue;
        }
        if let Some(every) = show.log_every {
            let due = (s.elapsed.as_secs_f64() / every.as_secs_f64()) as u32;
            if due > logged {
                // After a stall, one line, not a burst of them.
                logged = due;
                log_line(show.label, &s);
            }
        }
        if let Some(status) = &show.status {
            let now = tokio::time::Instant::now();
            let text = status_text(show.label, &s);
            let due = last_status_at.is_none_or(|at| now - at >= STATUS_EVERY);
            if due && text != last_status {
                status.set_if(&text, || {
                    let now = progress.snapshot();
                    now.running && now.generation == s.generation
                });
                last_status = text;
                last_status_at = Some(now);
            }
        }
    }
    if let Some(bar) = bar {
        update_bar(&bar, &progress.snapshot());
        take_off_screen(&bar);
    }
}

fn log_line(label: &str, s: &ProgressSnapshot) {
    let text = log_text(label, s);
    tracing::info!(
        polled = s.polled,
        total = s.total,
        percent = s.percent(),
        per_second = (s.rate() * 10.0).round() / 10.0,
        eta_s = s.eta().map(|d| d.as_secs()),
        "{text}"
    );
}

fn new_bar(label: &str, total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(style(&format!(
                "{label} [{{bar:30}}] {{human_pos}}/{{human_len}} polled {{percent:>3}}%  {{msg}}"
            ))),
        None => {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(style(
                &format!("{label} {{spinner}} {{human_pos}} polled  {{msg}}"),
            ))
        }
    };
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

fn update_bar(bar: &ProgressBar, s: &ProgressSnapshot) {
    if let Some(total) = s.total {
        bar.set_length(total);
    }
    bar.set_position(s.polled);
    let mut msg = rate_text(s.rate());
    match (s.running, s.eta()) {
        (true, Some(eta)) if s.total.is_some() => {
            msg.push_str(&format!(", ETA {}", short_duration(eta)))
        }
        (false, _) => msg.push_str(&format!(" in {}", short_duration(s.elapsed))),
        _ => {}
    }
    bar.set_message(msg);
}

fn style(template: &str) -> ProgressStyle {
    // The templates are ours and fixed; a typo falls back to indicatif's default.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// The bar on screen, if any: log lines are written around it (see [`LogWriter`]).
static ON_SCREEN: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn on_screen() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    ON_SCREEN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Shows `bar` on stderr until [`take_off_screen`].
fn put_on_screen(bar: &ProgressBar) {
    *on_screen() = Some(bar.clone());
}

/// Finishes the bar on screen where it stands and moves past it, so what is printed
/// next starts on a line of its own.
fn take_off_screen(bar: &ProgressBar) {
    let mut slot = on_screen();
    bar.finish();
    if slot.take().is_some() && !bar.is_hidden() {
        let _ = std::io::Write::write_all(&mut std::io::stderr(), b"\n");
    }
}

/// Where log lines go: stderr, with a bar on screen lifted for the line and redrawn
/// below it (otherwise a warning in mid-cycle would land inside the bar's line).
/// `telemetry` installs it as the log writer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let bar = on_screen().clone();
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf)),
            None => std::io::stderr().write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter
    }
}

/// `track import`'s bar over `len` IDs: on a terminal and for big files only.
pub(crate) fn import_bar(len: usize) -> Option<ProgressBar> {
    if len < IMPORT_BAR_MIN || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr())
        .with_style(style(
            "import [{bar:30}] {human_pos}/{human_len} IDs {percent:>3}%  ETA {eta}",
        ));
    put_on_screen(&bar);
    Some(bar)
}

/// Ends `track import`'s bar: the summary printed next says what it showed.
pub(crate) fn finish_import_bar(bar: ProgressBar) {
    *on_screen() = None;
    bar.finish_and_clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(polled: u64, total: Option<u64>, secs: u64) -> ProgressSnapshot {
        ProgressSnapshot {
            generation: 1,
            running: true,
            total,
            polled,
            elapsed: Duration::from_secs(secs),
        }
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(2100), "2,100");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn durations_read_like_an_eta() {
        let s = Duration::from_secs;
        assert_eq!(short_duration(s(0)), "0s");
        assert_eq!(short_duration(s(45)), "45s");
        assert_eq!(short_duration(s(89)), "89s");
        assert_eq!(short_duration(s(100)), "2m");
        assert_eq!(short_duration(s(80 * 60)), "80m");
        assert_eq!(short_duration(s(100 * 60)), "1h 40m");
    }

    #[test]
    fn status_text_reads_like_systemctl_status() {
        // 2,100 in 60 s is 35/s; 2,900 left is 83 s.
        assert_eq!(
            status_text("cycle", &snap(2100, Some(5000), 60)),
            "cycle 42%: 2,100/5,000 polled, ETA 83s"
        );
        // 2,100 in 25 s is 84/s; 2,900 left at 84/s is 35 s.
        assert_eq!(
            log_text("cycle", &snap(2100, Some(5000), 25)),
            "cycle 42%: 2,100/5,000 polled, ETA 35s, 84/s"
        );
        // The example: 100,000 projects at 20/s.
        assert_eq!(
            status_text("cycle", &snap(42_000, Some(100_000), 2100)),
            "cycle 42%: 42,000/100,000 polled, ETA 48m"
        );
        assert_eq!(
            status_text("cycle", &snap(0, Some(5000), 0)),
            "cycle 0%: 0/5,000 polled"
        );
        assert_eq!(
            status_text("refresh", &snap(12, None, 4)),
            "refresh: 12 polled, 3.0/s"
        );
    }

    #[test]
    fn the_interval_can_be_overridden() {
        assert_eq!(log_interval_from(None), LOG_INTERVAL);
        assert_eq!(log_interval_from(Some("")), LOG_INTERVAL);
        assert_eq!(log_interval_from(Some("500ms")), Duration::from_millis(500));
        assert_eq!(log_interval_from(Some("1ms")), Duration::from_millis(100));
        assert_eq!(
            log_interval_from(Some("300000000000y")),
            Duration::from_secs(24 * 3600)
        );
        assert_eq!(log_interval_from(Some("soon")), LOG_INTERVAL);
    }

    #[tokio::test]
    async fn a_display_asks_for_the_total_while_it_runs() {
        let progress = Arc::new(CycleProgress::default());
        let display = start(
            progress.clone(),
            Show {
                label: "cycle",
                bar: false,
                log_every: Some(Duration::from_secs(10)),
                status: None,
            },
        );
        for _ in 0..100 {
            if progress.watched() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(progress.watched(), "a display asks for the total");
        let running = progress.begin(Some(100));
        for _ in 0..35 {
            progress.polled_one();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let s = progress.snapshot();
        assert_eq!((s.polled, s.percent()), (35, Some(35)));
        drop(running);
        display.stop().await;
        assert!(!progress.watched());
    }
}
