//! Parsers for the strings status documents put numbers in: durations,
//! byte sizes, timestamps and plain numeric strings.
//!
//! A leaf module: it imports nothing from the crate. Pure functions, used by
//! the extraction engine (`parse:` of a metric rule) and by the config loader
//! (`max_body_bytes: 4MiB`, container limits). Each
//! returns `None` for anything it does not recognise and never returns NaN or
//! an infinity.
//!
//! | function | accepts | gives |
//! |---|---|---|
//! | [`parse_number`] | `42`, `-1.5`, `1.5e3`, `.5` (not `inf`, `NaN`, hex, `1_000`) | the number |
//! | [`parse_duration`] | `2h15m30s`, `150ms`, `1.5s`, `1d2h`, `2h 15m`, `-5s`, `12.5`, `2:15:30`, `3 days, 2:15:30.5`, `1.02:15:30`, `PT2H15M30S`, `P1DT2H` | seconds |
//! | [`parse_bytes`] | `10.5GB`, `1.5 kB`, `500M`, `512MiB`, `10Gi`, `1024`, `1024 bytes` | bytes |
//! | [`parse_cpu`] | `2`, `0.5`, `500m` (Kubernetes CPU quantities, not negative) | cores |
//! | [`parse_percent`] | `12.5%`, `12.5 %`, `99`, `250%` | a ratio (`0.125`, `0.99`, `2.5`) |
//! | [`parse_timestamp`] | `2026-02-16T19:15:00.000Z`, `…+02:00`, `…T19:15:00` (no offset: UTC), `2026-02-16`, `1657568506.25` | Unix seconds |
//!
//! Durations: units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, `d`, `w` and their
//! long forms (`sec`, `min`, `hours`, `days`, …), case-insensitive; no months
//! or years (their length is ambiguous). Clock forms are Python's
//! `str(timedelta)` (`[-]D day[s], H:MM:SS[.f]`, the days signed, the clock
//! added) and .NET's `TimeSpan` (`[-][D.]HH:MM:SS[.f]`, the sign on the whole).
//!
//! Bytes: SI decimal for `k`/`kB`, `M`/`MB`, `G`/`GB`, `T`/`TB`, `P`/`PB`,
//! `E`/`EB`; binary for `Ki`/`KiB`, `Mi`/`MiB`, … as Kubernetes writes them.
//! Units are case-insensitive, except that a lone lowercase `m` is refused:
//! Kubernetes reads it as milli, the JVM as mebi.

/// A plain decimal number (optional sign, fraction, exponent), surrounding
/// whitespace allowed; `None` for anything else, including `inf`/`NaN` and
/// values that overflow `f64`.
pub fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    let bytes = s.as_bytes();
    if !bytes.iter().any(u8::is_ascii_digit)
        || !bytes
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Seconds in a duration string; see the module documentation for the forms.
pub fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Some(v) = parse_number(s) {
        return Some(v);
    }
    let v = if s.contains(':') {
        parse_clock(s)?
    } else {
        let (neg, rest) = split_sign(s);
        let magnitude = match rest.as_bytes().first() {
            Some(b'P' | b'p') => parse_iso8601_duration(&rest[1..])?,
            _ => parse_unit_duration(rest)?,
        };
        if neg {
            -magnitude
        } else {
            magnitude
        }
    };
    Some(v).filter(|v| v.is_finite())
}

/// Bytes in a size string; see the module documentation for the units.
pub fn parse_bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = number_prefix_len(s)?;
    let number: f64 = s[..split].parse().ok()?;
    let unit = s[split..].trim_start();
    let factor = bytes_unit(unit)?;
    Some(number * factor).filter(|v| v.is_finite())
}

/// Unix seconds (with fraction) of an RFC 3339 timestamp, or of a numeric
/// string taken as epoch seconds. A timestamp without an offset is read as
/// UTC; a date alone as its midnight UTC.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Some(v) = parse_number(s) {
        return Some(v);
    }
    parse_rfc3339(s)
}

/// A percentage as a ratio: `"12.5%"` (the sign optional, spaces allowed
/// before it) and plain numbers are percent, so both `"12.5%"` and `"12.5"`
/// give `0.125`.
pub fn parse_percent(s: &str) -> Option<f64> {
    let s = s.trim();
    let number = s.strip_suffix('%').unwrap_or(s);
    parse_number(number).map(|v| v / 100.0)
}

/// CPU quantities as Kubernetes writes them: `2`, `0.5`, `500m`.
pub fn parse_cpu(s: &str) -> Option<f64> {
    let s = s.trim();
    let v = match s.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().ok()? / 1000.0,
        None => s.parse::<f64>().ok()?,
    };
    (v.is_finite() && v >= 0.0).then_some(v)
}

fn split_sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}

/// Length of the leading `[+-]digits[.digits][e[+-]digits]` of `s`, if it has
/// at least one digit. An `e` not followed by digits is not part of it (`1EB`).
fn number_prefix_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        let frac_start = i + 1;
        let mut j = frac_start;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        digits += j - frac_start;
        i = j;
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        let mut j = i + 1;
        if j < b.len() && matches!(b[j], b'+' | b'-') {
            j += 1;
        }
        let exp_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    Some(i)
}

/// Length of the leading unsigned `digits[.digits]` (at least one digit).
fn decimal_prefix_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i;
    if i < b.len() && b[i] == b'.' {
        let mut j = i + 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        digits += j - i - 1;
        i = j;
    }
    (digits > 0).then_some(i)
}

/// `s` with ASCII letters lowercased, in `buf` (no allocation); `None` when
/// longer than any unit.
fn ascii_lowercase<'b>(s: &str, buf: &'b mut [u8; 16]) -> Option<&'b str> {
    let out = buf.get_mut(..s.len())?;
    for (o, b) in out.iter_mut().zip(s.bytes()) {
        *o = b.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}

fn bytes_unit(unit: &str) -> Option<f64> {
    const K: f64 = 1024.0;
    if unit == "m" {
        return None;
    }
    let mut buf = [0; 16];
    let factor = match ascii_lowercase(unit, &mut buf)? {
        "" | "b" | "byte" | "bytes" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "p" | "pb" => 1e15,
        "e" | "eb" => 1e18,
        "ki" | "kib" => K,
        "mi" | "mib" => K * K,
        "gi" | "gib" => K * K * K,
        "ti" | "tib" => K * K * K * K,
        "pi" | "pib" => K * K * K * K * K,
        "ei" | "eib" => K * K * K * K * K * K,
        _ => return None,
    };
    Some(factor)
}

fn duration_unit(unit: &str) -> Option<f64> {
    let mut buf = [0; 16];
    let factor = match ascii_lowercase(unit, &mut buf)? {
        "ns" | "nsec" | "nanosecond" | "nanoseconds" => 1e-9,
        "us" | "µs" | "μs" | "usec" | "microsecond" | "microseconds" => 1e-6,
        "ms" | "msec" | "millisecond" | "milliseconds" => 1e-3,
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        "w" | "week" | "weeks" => 604_800.0,
        _ => return None,
    };
    Some(factor)
}

/// `2h15m30s`, `1.5s`, `2h 15m`, `3 days`: one or more `<number><unit>`.
fn parse_unit_duration(s: &str) -> Option<f64> {
    let mut rest = s;
    let mut total = 0.0;
    let mut components = 0;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let n = decimal_prefix_len(rest)?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = rest[n..].trim_start();
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| !c.is_alphabetic())
            .map_or(rest.len(), |(i, _)| i);
        if unit_len == 0 {
            return None;
        }
        total += value * duration_unit(&rest[..unit_len])?;
        rest = &rest[unit_len..];
        components += 1;
    }
    (components > 0).then_some(total)
}

/// ISO 8601 duration after the `P`: `[nW][nD][T[nH][nM][nS]]`, fractions
/// allowed (`.` or `,`); years and months are refused.
fn parse_iso8601_duration(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut in_time = false;
    // Designators must come in this order, each at most once.
    let mut last_rank = 0;
    let mut components = 0;
    let mut rest = s;
    while !rest.is_empty() {
        if !in_time && matches!(rest.as_bytes()[0], b'T' | b't') {
            in_time = true;
            rest = &rest[1..];
            if rest.is_empty() {
                return None;
            }
            continue;
        }
        let n = rest
            .bytes()
            .position(|b| !(b.is_ascii_digit() || b == b'.' || b == b','))
            .unwrap_or(rest.len());
        if n == 0 || n == rest.len() {
            return None;
        }
        let number = rest[..n].replace(',', ".");
        if decimal_prefix_len(&number) != Some(number.len()) {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        let (rank, factor) = match (in_time, rest.as_bytes()[n].to_ascii_uppercase()) {
            (false, b'W') => (1, 604_800.0),
            (false, b'D') => (2, 86400.0),
            (true, b'H') => (3, 3600.0),
            (true, b'M') => (4, 60.0),
            (true, b'S') => (5, 1.0),
            _ => return None,
        };
        if rank <= last_rank {
            return None;
        }
        last_rank = rank;
        total += value * factor;
        components += 1;
        rest = &rest[n + 1..];
    }
    (components > 0).then_some(total)
}

/// `H:MM:SS[.f]` with an optional Python `D day[s], ` or .NET `D.` day prefix.
fn parse_clock(s: &str) -> Option<f64> {
    if let Some((days, clock)) = s.split_once(',') {
        // Python: "-1 day, 23:59:59" is -1 day + 23:59:59.
        let days = days.trim();
        let number = days
            .strip_suffix("days")
            .or_else(|| days.strip_suffix("day"))?
            .trim_end();
        let (neg, digits) = split_sign(number);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let d: f64 = digits.parse().ok()?;
        let d = if neg { -d } else { d };
        let (h, tail) = clock.trim().split_once(':')?;
        return Some(d * 86400.0 + hms(h, tail)?);
    }
    let (neg, rest) = split_sign(s);
    let (first, tail) = rest.split_once(':')?;
    let (days, hours) = match first.split_once('.') {
        Some((d, h)) => (all_digits(d)?, h),
        None => (0.0, first),
    };
    let v = days * 86400.0 + hms(hours, tail)?;
    Some(if neg { -v } else { v })
}

fn all_digits(s: &str) -> Option<f64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `H` and `MM:SS[.f]` of a clock: hours any number of digits, minutes and
/// seconds two digits below 60.
fn hms(h: &str, tail: &str) -> Option<f64> {
    let (m, sec) = tail.split_once(':')?;
    if m.len() != 2 || sec.contains(':') {
        return None;
    }
    let h = all_digits(h)?;
    let m = all_digits(m)?;
    let (whole, frac) = match sec.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (sec, None),
    };
    if whole.len() != 2 {
        return None;
    }
    let mut secs = all_digits(whole)?;
    if let Some(f) = frac {
        all_digits(f)?;
        secs = sec.parse().ok()?;
    }
    if m >= 60.0 || secs >= 60.0 {
        return None;
    }
    Some(h * 3600.0 + m * 60.0 + secs)
}

/// Reads exactly `n` ASCII digits at `*i` as a number.
fn fixed_digits(b: &[u8], i: &mut usize, n: usize) -> Option<i64> {
    let digits = b.get(*i..*i + n)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    *i += n;
    Some(
        digits
            .iter()
            .fold(0, |acc, d| acc * 10 + i64::from(d - b'0')),
    )
}

fn expect(b: &[u8], i: &mut usize, c: u8) -> Option<()> {
    (b.get(*i) == Some(&c)).then(|| *i += 1)
}

fn parse_rfc3339(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    let year = fixed_digits(b, &mut i, 4)?;
    expect(b, &mut i, b'-')?;
    let month = fixed_digits(b, &mut i, 2)?;
    expect(b, &mut i, b'-')?;
    let day = fixed_digits(b, &mut i, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day) as f64;
    if i == b.len() {
        return Some(days * 86400.0);
    }
    if !matches!(b[i], b'T' | b't' | b' ') {
        return None;
    }
    i += 1;
    let hour = fixed_digits(b, &mut i, 2)?;
    expect(b, &mut i, b':')?;
    let minute = fixed_digits(b, &mut i, 2)?;
    expect(b, &mut i, b':')?;
    let second = fixed_digits(b, &mut i, 2)?;
    // 60 is a leap second.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut fraction = 0.0;
    if matches!(b.get(i), Some(b'.' | b',')) {
        let start = i + 1;
        let mut j = start;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j == start {
            return None;
        }
        // Nanosecond precision is more than an f64 of Unix seconds holds.
        let mut scale = 1.0;
        for d in &b[start..j.min(start + 9)] {
            scale /= 10.0;
            fraction += f64::from(d - b'0') * scale;
        }
        i = j;
    }
    let offset = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            i += 1;
            let oh = fixed_digits(b, &mut i, 2)?;
            let om = if i == b.len() {
                0
            } else {
                if b[i] == b':' {
                    i += 1;
                }
                fixed_digits(b, &mut i, 2)?
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if sign == b'-' {
                -o
            } else {
                o
            }
        }
        Some(_) => return None,
    };
    if i != b.len() {
        return None;
    }
    let secs = days * 86400.0 + (hour * 3600 + minute * 60 + second - offset) as f64;
    Some(secs + fraction)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
