//! Time as a value: the pipeline takes `now` as a parameter so tests can fix it.
//! Stored as Unix milliseconds, shown as RFC 3339 UTC.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};

/// A point in time, in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub i64);

impl Millis {
    /// The wall clock now.
    pub fn now() -> Self {
        Millis(Utc::now().timestamp_millis())
    }

    /// Parses an RFC 3339 timestamp (`2026-11-28T09:00:00Z`).
    pub fn parse_rfc3339(text: &str) -> Result<Self, String> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| Millis(t.timestamp_millis()))
            .map_err(|e| format!("`{text}` is not an RFC 3339 time (like 2026-11-28T09:00:00Z): {e}"))
    }

    /// Milliseconds from `earlier` to `self`, never negative.
    pub fn since(self, earlier: Millis) -> u64 {
        u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            None => write!(f, "@{}ms", self.0),
        }
    }
}

impl serde::Serialize for Millis {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where "now" comes from: the wall clock, or a hand-moved one so tests can cross an expiry or
/// a rate limit without waiting for it.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// [`Millis::now`].
    #[default]
    System,
    /// Stands still until [`Clock::advance`] moves it.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock showing `start`.
    pub fn manual(start: Millis) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start.0)))
    }

    /// The current time.
    pub fn now(&self) -> Millis {
        match self {
            Clock::System => Millis::now(),
            Clock::Manual(at) => Millis(at.load(Ordering::Relaxed)),
        }
    }

    /// Moves a manual clock forward; the system clock moves by itself.
    pub fn advance(&self, by: std::time::Duration) {
        if let Clock::Manual(at) = self {
            at.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX), Ordering::Relaxed);
        }
    }
}

/// A number in [0, 1) that differs between calls, from the clock's nanoseconds: enough to spread
/// out retries of clients that failed together (Graph pages, webhook deliveries).
pub fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    let mixed = xxhash_rust::xxh3::xxh3_64(&nanos.to_le_bytes());
    (mixed >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc3339() {
        let t = Millis::parse_rfc3339("2026-11-28T09:00:00.250Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-28T09:00:00.250Z");
        assert!(Millis::parse_rfc3339("yesterday").is_err());
        assert_eq!(Millis(5).since(Millis(9)), 0);
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = Clock::manual(Millis(1_000));
        assert_eq!(clock.now(), Millis(1_000));
        clock.advance(std::time::Duration::from_secs(2));
        assert_eq!(clock.now(), Millis(3_000));
        assert!(Clock::System.now().0 > 1_700_000_000_000);
    }
}
