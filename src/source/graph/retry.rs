//! How long to wait before asking Graph again: its `Retry-After` when it gives one (bounded),
//! else exponential backoff with jitter.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Bounds on retrying one page.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries per page, the first included.
    pub attempts: u32,
    /// The first backoff when Graph gives no `Retry-After`; doubles each time.
    pub base_backoff: Duration,
    /// No single wait is longer than this, whatever `Retry-After` says.
    pub max_wait: Duration,
    /// One request, headers and body, must finish within this.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base_backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(120),
            request_timeout: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before try `attempt + 1`, after try `attempt` (1-based) failed.
    pub fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let wait = retry_after.unwrap_or_else(|| {
            let exponential = self.base_backoff.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
            // Jitter in [50%, 100%] spreads out clients that were throttled together.
            exponential.mul_f64(0.5 + 0.5 * crate::clock::jitter())
        });
        wait.min(self.max_wait)
    }
}

/// `Retry-After` as delay-seconds (Graph sends whole seconds; fractions are tolerated) or
/// as an HTTP-date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)));
    }
    let date = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let delta = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after(&headers("3")), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&headers("0.5")), Some(Duration::from_millis(500)));
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
        let past = retry_after(&headers("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(past, Some(Duration::ZERO));
        let in_a_minute = (chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc2822();
        let wait = retry_after(&headers(&in_a_minute)).unwrap();
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60), "{wait:?}");
    }

    #[test]
    fn waits_are_bounded_and_grow() {
        let policy = RetryPolicy { max_wait: Duration::from_secs(10), ..RetryPolicy::default() };
        assert_eq!(policy.wait(1, Some(Duration::from_secs(3600))), Duration::from_secs(10));
        assert_eq!(policy.wait(1, Some(Duration::from_secs(2))), Duration::from_secs(2));
        let first = policy.wait(1, None);
        assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(500), "{first:?}");
        let fourth = policy.wait(4, None);
        assert!(fourth >= Duration::from_secs(2) && fourth <= Duration::from_secs(4), "{fourth:?}");
        assert_eq!(policy.wait(40, None), Duration::from_secs(10));
    }
}
