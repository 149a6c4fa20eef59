//! Wall-clock timestamps as the OpenStack services print them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::calendar::{date_time, parse_date_time};

/// Microseconds since the Unix epoch (UTC). Stored in the state file as a
/// plain number so a restarted simulator resumes its timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Micros(pub i64);

impl Micros {
    pub(crate) fn now() -> Micros {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Micros(i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
    }

    pub(crate) fn plus(self, d: Duration) -> Micros {
        Micros(self.0.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
    }

    /// How long from `now` until this instant (zero when it has passed).
    pub(crate) fn until(self, now: Micros) -> Duration {
        Duration::from_micros(u64::try_from(self.0.saturating_sub(now.0)).unwrap_or(0))
    }

    /// Whole seconds since the epoch and the microseconds past them.
    fn split(self) -> (i64, u32) {
        (self.0.div_euclid(1_000_000), self.0.rem_euclid(1_000_000) as u32)
    }

    /// `2013-09-03T04:01:32Z`: Nova `created`/`updated`, Neutron, Glance.
    pub(crate) fn iso_seconds(self) -> String {
        format!("{}Z", date_time(self.split().0))
    }

    /// `2013-09-23T13:37:00.880302`: Cinder timestamps, Nova `launched_at`
    /// (Python's `str()` of a naive datetime).
    pub(crate) fn iso_micros_naive(self) -> String {
        let (secs, us) = self.split();
        format!("{}.{us:06}", date_time(secs))
    }

    /// `2013-09-23T13:37:00.000000`: a naive datetime read back from a
    /// database column without fractional seconds (Nova's `launched_at`,
    /// Cinder's timestamps once stored).
    pub(crate) fn iso_db(self) -> String {
        format!("{}.000000", date_time(self.split().0))
    }

    /// `2015-11-07T02:58:43.578887Z`: Keystone `expires_at`/`issued_at`.
    pub(crate) fn iso_micros_z(self) -> String {
        format!("{}Z", self.iso_micros_naive())
    }

    /// Parses an ISO 8601 timestamp as clients send it in filters
    /// (`changes-since`): `YYYY-MM-DDTHH:MM:SS`, optional fraction, then
    /// `Z`, an offset `+HH:MM`, or nothing (UTC, as oslo's `parse_isotime`).
    pub(crate) fn parse_iso(s: &str) -> Option<Micros> {
        let local = parse_date_time(s.get(..19)?)?;
        let mut rest = &s[19..];
        let mut micros = 0i64;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            let padded = format!("{:0<6}", &frac[..digits.min(6)]);
            micros = padded.parse().ok()?;
            rest = &frac[digits..];
        }
        let offset = match rest {
            "" | "Z" | "z" => 0,
            _ => {
                let sign = match rest.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let (oh, om) = rest[1..]
                    .split_once(':')
                    .unwrap_or((rest.get(1..3)?, rest.get(3..).unwrap_or("00")));
                sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
            }
        };
        Some(Micros((local - offset) * 1_000_000 + micros))
    }
}

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.iso_seconds())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_services() {
        let t = Micros(1_700_000_000_123_456);
        assert_eq!(t.iso_seconds(), "2023-11-14T22:13:20Z");
        assert_eq!(t.iso_micros_naive(), "2023-11-14T22:13:20.123456");
        assert_eq!(t.iso_micros_z(), "2023-11-14T22:13:20.123456Z");
    }

    #[test]
    fn parses_what_clients_send() {
        let t = Micros(1_700_000_000_000_000);
        assert_eq!(Micros::parse_iso("2023-11-14T22:13:20Z"), Some(t));
        assert_eq!(Micros::parse_iso("2023-11-14T22:13:20"), Some(t));
        assert_eq!(Micros::parse_iso("2023-11-14T23:13:20+01:00"), Some(t));
        assert_eq!(Micros::parse_iso("2023-11-14T22:13:20.5"), Some(Micros(t.0 + 500_000)));
        assert_eq!(Micros::parse_iso("yesterday"), None);
    }

    #[test]
    fn until_is_never_negative() {
        assert_eq!(Micros(10).until(Micros(20)), Duration::ZERO);
        assert_eq!(Micros(20).until(Micros(10)), Duration::from_micros(10));
    }
}
