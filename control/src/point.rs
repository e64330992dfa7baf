//! A point in a branch's history as a user writes it on the command line: an LSN
//! (`0/16B3748`) or a timestamp (RFC 3339, `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]`, or a date
//! for its midnight; UTC when no offset is given, as in a UTC session of PostgreSQL).

use chrono::{DateTime, NaiveDateTime, Utc};
use strata_core::Lsn;

use crate::ControlError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Lsn(Lsn),
    /// Microseconds since the Unix epoch.
    Time(i64),
}

impl Point {
    /// `None` for an empty string (the latest commit).
    pub fn parse(text: &str) -> Result<Option<Point>, ControlError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        if let Ok(lsn) = text.parse::<Lsn>() {
            return Ok(Some(Point::Lsn(lsn)));
        }
        let with_zone = DateTime::parse_from_rfc3339(text)
            .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z"))
            .map(|t| t.with_timezone(&Utc));
        let time = with_zone.or_else(|_| {
            [
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
            .or_else(|| {
                chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
            })
            .map(|t| t.and_utc())
            .ok_or(())
        });
        match time {
            Ok(t) => Ok(Some(Point::Time(t.timestamp_micros()))),
            Err(()) => Err(ControlError::InvalidArgument(format!(
                "{text:?} is neither an LSN (like 0/16B3748) nor a timestamp \
                 (like 2026-11-24 16:30:00+00)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_and_timestamps_parse() {
        assert_eq!(Point::parse("").unwrap(), None);
        assert_eq!(Point::parse("0/2A").unwrap(), Some(Point::Lsn(Lsn(42))));
        let utc = Some(Point::Time(1_764_001_800_000_000));
        assert_eq!(Point::parse("2025-11-24T16:30:00Z").unwrap(), utc);
        assert_eq!(Point::parse("2025-11-24 16:30:00+00").unwrap(), utc);
        assert_eq!(Point::parse("2025-11-24 17:30:00+01:00").unwrap(), utc);
        assert_eq!(Point::parse("2025-11-24 16:30:00").unwrap(), utc);
        assert_eq!(
            Point::parse("2025-11-24").unwrap(),
            Some(Point::Time(1_763_942_400_000_000))
        );
        assert!(Point::parse("yesterday").is_err());
    }
}
