//! The durations flags take (`--timeout 5s`, `--interval 250ms`,
//! `--duration 1.5`): a number with an optional unit, read once for every
//! command.

use std::time::Duration;

/// Reads a duration: a number with an optional unit (`us`, `ms`, `s`, `m`,
/// `h`); a bare number is seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let seconds_per_unit = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?}: use us, ms, s, m or h (10s, 250ms, 1.5)"
            ))
        }
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("expected a duration such as 10s, 250ms or 1.5, not {s:?}"))?;
    Duration::try_from_secs_f64(n * seconds_per_unit).map_err(|e| format!("{s:?}: {e}"))
}

/// A duration that must not be zero.
pub(super) fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be more than zero".to_owned()),
        d => Ok(d),
    }
}

/// A timeout: more than zero, since zero would mean "no timeout" to the
/// socket layer, the opposite of what was asked.
pub(super) fn parse_timeout(s: &str) -> Result<Duration, String> {
    parse_positive_duration(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = |s| parse_duration(s).unwrap();
        assert_eq!(ok("10s"), Duration::from_secs(10));
        assert_eq!(ok("1.5"), Duration::from_millis(1500));
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("20us"), Duration::from_micros(20));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("0"), Duration::ZERO);
        for bad in ["", "s", "10 parsecs", "-1s", "1e3", "1.2.3"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_timeout("0s").is_err());
    }
}
