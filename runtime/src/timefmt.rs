//! RFC 3339 timestamps in UTC, as runc writes them (state `created`, log lines), without
//! pulling in a date crate for one conversion.

use std::time::{SystemTime, UNIX_EPOCH};

/// `2026-11-25T17:48:40.852899346Z`
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (date, time) = split(d.as_secs());
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        return format!("{date}T{time}Z");
    }
    // Go's RFC3339Nano trims trailing zeros from the fraction.
    let frac = format!("{nanos:09}");
    format!("{date}T{time}.{}Z", frac.trim_end_matches('0'))
}

/// `2026-11-25T17:48:40Z`
pub fn rfc3339_secs(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (date, time) = split(secs);
    format!("{date}T{time}Z")
}

fn split(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60),
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_like_go() {
        let t = UNIX_EPOCH + Duration::new(1_795_628_920, 852_899_346);
        assert_eq!(rfc3339_nanos(t), "2026-11-25T17:48:40.852899346Z");
        assert_eq!(rfc3339_secs(t), "2026-11-25T17:48:40Z");
        let t = UNIX_EPOCH + Duration::new(951_782_400, 500_000_000);
        assert_eq!(rfc3339_nanos(t), "2000-02-29T00:00:00.5Z");
        assert_eq!(rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
