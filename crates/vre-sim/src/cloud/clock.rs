//! Wall-clock timestamps as the OpenStack services print them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

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

    /// (year, month, day, hour, minute, second, microsecond) in UTC.
    fn civil(self) -> (i64, u32, u32, u32, u32, u32, u32) {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        (y, m, d, rem / 3600, rem / 60 % 60, rem % 60, micros)
    }

    /// `2013-09-03T04:01:32Z`: Nova `created`/`updated`, Neutron, Glance.
    pub(crate) fn iso_seconds(self) -> String {
        let (y, mo, d, h, mi, s, _) = self.civil();
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }

    /// `2013-09-23T13:37:00.880302`: Cinder timestamps, Nova `launched_at`
    /// (Python's `str()` of a naive datetime).
    pub(crate) fn iso_micros_naive(self) -> String {
        let (y, mo, d, h, mi, s, us) = self.civil();
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}")
    }

    /// `2013-09-23T13:37:00.000000`: a naive datetime read back from a
    /// database column without fractional seconds (Nova's `launched_at`,
    /// Cinder's timestamps once stored).
    pub(crate) fn iso_db(self) -> String {
        let (y, mo, d, h, mi, s, _) = self.civil();
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.000000")
    }

    /// `2015-11-07T02:58:43.578887Z`: Keystone `expires_at`/`issued_at`.
    pub(crate) fn iso_micros_z(self) -> String {
        format!("{}Z", self.iso_micros_naive())
    }

    /// Parses an ISO 8601 timestamp as clients send it in filters
    /// (`changes-since`): `YYYY-MM-DDTHH:MM:SS`, optional fraction, then
    /// `Z`, an offset `+HH:MM`, or nothing (UTC, as oslo's `parse_isotime`).
    pub(crate) fn parse_iso(s: &str) -> Option<Micros> {
        let b = s.as_bytes();
        if b.len() < 19
            || b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't' | b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = s.get(r)?;
            part.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| part.parse().ok())
                .flatten()
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
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
        let days = days_from_civil(y, mo as u32, d as u32);
        let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
        Some(Micros(secs * 1_000_000 + micros))
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
    fn calendar_round_trips() {
        for days in [-719_468, -1, 0, 59, 60, 365, 11_016, 19_723, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn until_is_never_negative() {
        assert_eq!(Micros(10).until(Micros(20)), Duration::ZERO);
        assert_eq!(Micros(20).until(Micros(10)), Duration::from_micros(10));
    }
}
