//! Release ids: the UTC timestamps that name release directories.
//!
//! A release id is `YYYYmmddHHMMSS` in UTC, so that lexical order is time order and an operator
//! can read when a release was made from its name. Ids are pure values; choosing one that does not
//! collide with what a host already has is [`ReleaseId::after`]'s job.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

const FORMAT: &str = "%Y%m%d%H%M%S";

/// The name of one release directory, e.g. `20261122010320`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReleaseId(i64);

impl ReleaseId {
    /// The id of a release made at `time` (second precision).
    pub fn at(time: DateTime<Utc>) -> ReleaseId {
        ReleaseId(time.timestamp())
    }

    /// The id for a release made at `time` that sorts after every id in `existing`.
    pub fn after<'a>(
        time: DateTime<Utc>,
        existing: impl IntoIterator<Item = &'a ReleaseId>,
    ) -> ReleaseId {
        let latest = existing.into_iter().max().map_or(i64::MIN, |id| id.0);
        ReleaseId(time.timestamp().max(latest.saturating_add(1)))
    }

    /// Parses a release directory name; `None` for anything that is not exactly an id.
    pub fn parse(text: &str) -> Option<ReleaseId> {
        if text.len() != 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let naive = NaiveDateTime::parse_from_str(text, FORMAT).ok()?;
        Some(ReleaseId(Utc.from_utc_datetime(&naive).timestamp()))
    }

    /// When the release was made.
    pub fn time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.0, 0).unwrap_or_default()
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.time().format(FORMAT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_utc_timestamps_that_round_trip() {
        let time = DateTime::from_timestamp(1_795_309_400, 0).unwrap();
        let id = ReleaseId::at(time);
        assert_eq!(id.to_string(), "20261122010320");
        assert_eq!(ReleaseId::parse("20261122010320"), Some(id));
    }

    #[test]
    fn parse_rejects_anything_else() {
        for bad in [
            "",
            "2026112301432",
            "202611230143200",
            "2026112301432x",
            "20261399000000",
            "../20261123",
        ] {
            assert_eq!(ReleaseId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn after_never_collides_even_when_clock_is_behind() {
        let time = DateTime::from_timestamp(1_795_309_400, 0).unwrap();
        let existing = [
            ReleaseId::at(time),
            ReleaseId::parse("20300101000000").unwrap(),
        ];
        let id = ReleaseId::after(time, &existing);
        assert_eq!(id.to_string(), "20300101000001");
        assert_eq!(ReleaseId::after(time, &[]), ReleaseId::at(time));
    }
}
