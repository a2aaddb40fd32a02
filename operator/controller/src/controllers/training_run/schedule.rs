//! `spec.schedule`: a cron expression (in UTC, as a CronJob's default) that asks for a run at
//! each of its times. A tick is part of the run's identity, so each one runs once; ticks
//! missed while the operator was down collapse into the latest, as a CronJob without a
//! `startingDeadlineSeconds` would catch up once.

use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// The latest time of `cron` at or before `now` and after `created` (a TrainingRun is not
/// owed the ticks before it existed).
pub fn last_tick(cron: &Cron, created: Timestamp, now: Timestamp) -> Option<Timestamp> {
    let tick = cron
        .find_previous_occurrence(&now.to_zoned(TimeZone::UTC), true)
        .ok()?
        .timestamp();
    (tick > created).then_some(tick)
}

/// How long until the next time of `cron` after `now`.
pub fn until_next(cron: &Cron, now: Timestamp) -> Option<std::time::Duration> {
    let next = cron
        .find_next_occurrence(&now.to_zoned(TimeZone::UTC), false)
        .ok()?
        .timestamp();
    // A second past the tick, so the requeued reconcile sees it as passed.
    std::time::Duration::try_from(next.duration_since(now) + SignedDuration::from_secs(1)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn each_tick_after_creation_is_the_latest_one_passed() {
        let daily: Cron = "0 3 * * *".parse().unwrap();
        let created = at("2026-11-20T10:00:00Z");
        assert_eq!(
            last_tick(&daily, created, at("2026-11-21T02:59:59Z")),
            None,
            "no tick since creation yet"
        );
        assert_eq!(
            last_tick(&daily, created, at("2026-11-21T03:00:00Z")),
            Some(at("2026-11-21T03:00:00Z"))
        );
        // Missed ticks (an operator down for days) collapse into the latest.
        assert_eq!(
            last_tick(&daily, created, at("2026-11-25T12:00:00Z")),
            Some(at("2026-11-25T03:00:00Z"))
        );
    }

    #[test]
    fn the_next_wake_is_just_past_the_next_tick() {
        let hourly: Cron = "0 * * * *".parse().unwrap();
        let wait = until_next(&hourly, at("2026-11-21T10:59:30Z")).unwrap();
        assert_eq!(wait, std::time::Duration::from_secs(31));
    }
}
