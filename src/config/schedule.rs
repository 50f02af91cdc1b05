//! [`Schedule`]: `sync.schedule`, a cron expression evaluated in UTC, and the questions
//! the rest of the program asks about its ticks.
//!
//! Every question takes `now` as an argument and never reads a clock, so health, the
//! scheduler and the cycle deadline can be tested at any instant (a night, a weekend)
//! without waiting for it. Schedules need not be regular (`0 */5 9-17 * * MON-FRI` has a
//! five-minute gap by day and a long one by night), so answers come from the actual
//! ticks around `now`, never from "the first gap".

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};

use super::ConfigError;

/// What a schedule error says about the format, wherever schedules are described.
pub const SCHEDULE_HELP: &str =
    "six fields, seconds first, evaluated in UTC, e.g. \"0 */5 * * * *\"";

/// A cron schedule (UTC) with the text it came from, for messages.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub(crate) expression: String,
    pub(crate) cron: cron::Schedule,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

impl Schedule {
    pub fn parse(expression: &str) -> Result<Self, ConfigError> {
        let cron = cron::Schedule::from_str(expression).map_err(|e| {
            ConfigError::new(format!(
                "sync.schedule = {expression:?} is not a cron expression ({}); {SCHEDULE_HELP}",
                super::settings::one_line(&e.to_string())
            ))
        })?;
        if cron.upcoming(Utc).next().is_none() {
            return Err(ConfigError::new(format!(
                "sync.schedule = {expression:?} never fires (it is evaluated in UTC)"
            )));
        }
        Ok(Self {
            expression: expression.to_string(),
            cron,
        })
    }

    /// The latest tick at or before `now`, if the schedule ever fired before it.
    pub(crate) fn tick_at_or_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Ticks fall on whole seconds; cron's own search starts strictly before.
        let second = now.with_nanosecond(0).unwrap_or(now);
        if self.cron.includes(second) {
            return Some(second);
        }
        self.cron.after(&second).next_back()
    }

    /// The latest tick strictly before `tick`.
    pub(crate) fn tick_before(&self, tick: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let second = tick.with_nanosecond(0).unwrap_or(tick);
        if second < tick && self.cron.includes(second) {
            return Some(second);
        }
        self.cron.after(&second).next_back()
    }

    /// The first tick strictly after `now`.
    pub(crate) fn next_tick_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let second = now.with_nanosecond(0).unwrap_or(now);
        self.cron.after(&second).next()
    }

    /// The gap between the ticks around `now`: the latest at or before it and the next
    /// after it. `None` before the first tick or after the last.
    pub(crate) fn period_around(&self, now: DateTime<Utc>) -> Option<Duration> {
        let last = self.tick_at_or_before(now)?;
        let next = self.next_tick_after(now)?;
        (next - last).to_std().ok()
    }

    /// The gap between the next two ticks after this moment. Reads the clock and is
    /// only typical for regular schedules: prefer [`Schedule::period_around`].
    pub(crate) fn period(&self) -> Duration {
        let mut next = self.cron.upcoming(Utc);
        match (next.next(), next.next()) {
            (Some(a), Some(b)) => (b - a).to_std().unwrap_or(Duration::from_secs(300)),
            _ => Duration::from_secs(300),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid")
    }

    #[test]
    fn ticks_around_now_on_a_regular_schedule() {
        let s = Schedule::parse("0 */5 * * * *").expect("cron");
        let now = at(2026, 12, 1, 10, 7, 30);
        assert_eq!(s.tick_at_or_before(now), Some(at(2026, 12, 1, 10, 5, 0)));
        assert_eq!(s.next_tick_after(now), Some(at(2026, 12, 1, 10, 10, 0)));
        assert_eq!(s.period_around(now), Some(Duration::from_secs(300)));
        let tick = at(2026, 12, 1, 10, 5, 0);
        assert_eq!(s.tick_at_or_before(tick), Some(tick));
        assert_eq!(s.tick_before(tick), Some(at(2026, 12, 1, 10, 0, 0)));
        assert_eq!(s.next_tick_after(tick), Some(at(2026, 12, 1, 10, 10, 0)));
        let just_after = tick + chrono::Duration::milliseconds(400);
        assert_eq!(s.tick_at_or_before(just_after), Some(tick));
        assert_eq!(s.tick_before(just_after), Some(tick));
        assert_eq!(
            s.next_tick_after(just_after),
            Some(at(2026, 12, 1, 10, 10, 0))
        );
        let just_before = tick - chrono::Duration::milliseconds(400);
        assert_eq!(
            s.tick_at_or_before(just_before),
            Some(at(2026, 12, 1, 10, 0, 0))
        );
        assert_eq!(s.next_tick_after(just_before), Some(tick));
    }

    #[test]
    fn office_hours_have_a_night_and_a_weekend_gap() {
        // 2026-12-04 is a Friday.
        let s = Schedule::parse("0 */5 9-17 * * MON-FRI").expect("cron");
        let friday_evening = at(2026, 12, 4, 17, 57, 0);
        assert_eq!(
            s.tick_at_or_before(friday_evening),
            Some(at(2026, 12, 4, 17, 55, 0))
        );
        assert_eq!(
            s.next_tick_after(friday_evening),
            Some(at(2026, 12, 7, 9, 0, 0))
        );
        let saturday = at(2026, 12, 5, 12, 0, 0);
        assert_eq!(
            s.tick_at_or_before(saturday),
            Some(at(2026, 12, 4, 17, 55, 0))
        );
        assert_eq!(
            s.period_around(saturday),
            Some(Duration::from_secs(63 * 3600 + 5 * 60))
        );
        let tuesday_night = at(2026, 12, 1, 23, 0, 0);
        assert_eq!(
            s.period_around(tuesday_night),
            Some(Duration::from_secs(15 * 3600 + 5 * 60))
        );
        let tuesday_noon = at(2026, 12, 1, 12, 1, 0);
        assert_eq!(
            s.period_around(tuesday_noon),
            Some(Duration::from_secs(300))
        );
    }

    #[test]
    fn schedule_errors_say_utc_and_the_format() {
        let e = Schedule::parse("every minute")
            .expect_err("not cron")
            .to_string();
        assert!(e.contains("UTC") && e.contains("seconds first"), "{e}");
    }
}
