//! Date and time functions over ISO text in UTC: conversions, truncation (`toStartOf*`),
//! interval arithmetic with ClickHouse's month-end clamping, `dateDiff`'s boundary counting,
//! parts (`toYear`, `toYYYYMM`, ...) and `formatDateTime`'s MySQL-style patterns.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};
use rusqlite::functions::Context;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Result};

use super::{fail, flags, int_arg, text_arg};
use crate::budget;

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");

/// Reads `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS[.fff]` (or with `T`, and a trailing `Z`).
pub fn parse_datetime(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim().trim_end_matches('Z');
    if text.len() == 10 {
        return NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0));
    }
    let text = text.replacen('T', " ", 1);
    NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f").ok()
}

/// A value as a date-time: ISO text, or an integer (a day number below 65,536, as ClickHouse
/// reads `toDate(19000)`, else Unix seconds).
fn read(ctx: &Context<'_>, i: usize) -> Result<Option<NaiveDateTime>> {
    let dt = match ctx.get_raw(i) {
        ValueRef::Null => return Ok(None),
        ValueRef::Integer(n) if (0..65_536).contains(&n) => {
            EPOCH.and_hms_opt(0, 0, 0).map(|d| d + Duration::days(n))
        }
        ValueRef::Integer(n) => chrono::DateTime::from_timestamp(n, 0).map(|d| d.naive_utc()),
        ValueRef::Real(f) => chrono::DateTime::from_timestamp(f as i64, 0).map(|d| d.naive_utc()),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            let text = String::from_utf8_lossy(t);
            Some(
                parse_datetime(&text)
                    .ok_or_else(|| fail(format!("cannot parse '{text}' as a date or date-time")))?,
            )
        }
    };
    dt.map(Some).ok_or_else(|| fail("date out of range"))
}

/// Formats as the `out` kind: `date`, `datetime` or `datetime64:P`.
fn write(dt: NaiveDateTime, out: &str) -> String {
    match out {
        "date" => dt.format("%Y-%m-%d").to_string(),
        kind => match kind
            .strip_prefix("datetime64:")
            .and_then(|p| p.parse::<usize>().ok())
        {
            Some(p) if p > 0 => {
                let frac = format!("{:09}", dt.nanosecond());
                format!("{}.{}", dt.format("%Y-%m-%d %H:%M:%S"), &frac[..p.min(9)])
            }
            _ => dt.format("%Y-%m-%d %H:%M:%S").to_string(),
        },
    }
}

fn days(dt: &NaiveDateTime) -> i64 {
    (dt.date() - EPOCH).num_days()
}

fn months(dt: &NaiveDateTime) -> i64 {
    i64::from(dt.year()) * 12 + i64::from(dt.month0())
}

fn from_months(m: i64) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(
        i32::try_from(m.div_euclid(12)).ok()?,
        (m.rem_euclid(12) + 1) as u32,
        1,
    )
}

/// Adds `n` units, clamping to the month's end (Jan 31 + 1 month = Feb 28/29).
pub fn add(dt: NaiveDateTime, n: i64, unit: &str) -> Option<NaiveDateTime> {
    let step = |secs: i64| dt.checked_add_signed(Duration::seconds(secs.checked_mul(n)?));
    match unit {
        "second" => step(1),
        "minute" => step(60),
        "hour" => step(3600),
        "day" => step(86_400),
        "week" => step(7 * 86_400),
        "month" | "quarter" | "year" => {
            let per = match unit {
                "month" => 1,
                "quarter" => 3,
                _ => 12,
            };
            let target = from_months(months(&dt) + n * per)?;
            let last = from_months(months(&dt) + n * per + 1)?.pred_opt()?.day();
            target
                .with_day(dt.day().min(last))?
                .and_time(dt.time())
                .into()
        }
        _ => None,
    }
}

/// The start of the `n`-unit interval holding `dt`, counted from the Unix epoch.
pub fn start_of(dt: NaiveDateTime, unit: &str, n: i64) -> Option<NaiveDateTime> {
    let n = n.max(1);
    let secs = dt.and_utc().timestamp();
    let floor = |size: i64| {
        chrono::DateTime::from_timestamp(secs.div_euclid(size) * size, 0).map(|d| d.naive_utc())
    };
    match unit {
        "second" => floor(n),
        "minute" => floor(60 * n),
        "hour" => floor(3600 * n),
        "day" => EPOCH
            .checked_add_signed(Duration::days(days(&dt).div_euclid(n) * n))?
            .and_hms_opt(0, 0, 0),
        // Weeks start on Monday; 1970-01-05 was the first Monday after the epoch.
        "week" => {
            let monday = days(&dt) - 4;
            EPOCH
                .checked_add_signed(Duration::days(monday.div_euclid(7 * n) * 7 * n + 4))?
                .and_hms_opt(0, 0, 0)
        }
        "month" | "quarter" | "year" => {
            let per = match unit {
                "month" => n,
                "quarter" => 3 * n,
                _ => 12 * n,
            };
            let m = months(&dt) - 1970 * 12;
            from_months(m.div_euclid(per) * per + 1970 * 12)?.and_hms_opt(0, 0, 0)
        }
        _ => None,
    }
}

/// The unit boundaries crossed from `a` to `b` (ClickHouse's `dateDiff`).
fn date_diff(unit: &str, a: &NaiveDateTime, b: &NaiveDateTime) -> Option<i64> {
    let (sa, sb) = (a.and_utc().timestamp(), b.and_utc().timestamp());
    Some(match unit {
        "second" => sb - sa,
        "minute" => sb.div_euclid(60) - sa.div_euclid(60),
        "hour" => sb.div_euclid(3600) - sa.div_euclid(3600),
        "day" => days(b) - days(a),
        "week" => (days(b) + 3).div_euclid(7) - (days(a) + 3).div_euclid(7),
        "month" => months(b) - months(a),
        "quarter" => months(b).div_euclid(3) - months(a).div_euclid(3),
        "year" => i64::from(b.year() - a.year()),
        _ => return None,
    })
}

/// Whole units elapsed from `a` to `b` (ClickHouse's `age`).
fn age(unit: &str, a: &NaiveDateTime, b: &NaiveDateTime) -> Option<i64> {
    let secs = (*b - *a).num_seconds();
    Some(match unit {
        "second" => secs,
        "minute" => secs / 60,
        "hour" => secs / 3600,
        "day" => secs / 86_400,
        "week" => secs / (7 * 86_400),
        "month" | "quarter" | "year" => {
            let mut m = months(b) - months(a);
            let later =
                |x: &NaiveDateTime, y: &NaiveDateTime| (x.day(), x.time()) > (y.day(), y.time());
            if m > 0 && later(a, b) {
                m -= 1;
            } else if m < 0 && later(b, a) {
                m += 1;
            }
            match unit {
                "month" => m,
                "quarter" => m / 3,
                _ => m / 12,
            }
        }
        _ => return None,
    })
}

fn part(part: &str, dt: &NaiveDateTime) -> Option<i64> {
    Some(match part {
        "year" => i64::from(dt.year()),
        "quarter" => i64::from(dt.month0() / 3 + 1),
        "month" => i64::from(dt.month()),
        "day" => i64::from(dt.day()),
        "dayofweek" => i64::from(dt.weekday().number_from_monday()),
        "dayofyear" => i64::from(dt.ordinal()),
        "hour" => i64::from(dt.hour()),
        "minute" => i64::from(dt.minute()),
        "second" => i64::from(dt.second()),
        "yyyymm" => i64::from(dt.year()) * 100 + i64::from(dt.month()),
        "yyyymmdd" => {
            (i64::from(dt.year()) * 100 + i64::from(dt.month())) * 100 + i64::from(dt.day())
        }
        "unix" => dt.and_utc().timestamp(),
        "isoweek" => i64::from(dt.iso_week().week()),
        _ => return None,
    })
}

/// ClickHouse's `formatDateTime` patterns (MySQL style; `%i` is minutes, `%M` the month name).
pub fn format(dt: &NaiveDateTime, pattern: &str) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let spec = chars.next().ok_or("a pattern cannot end with %")?;
        let piece = match spec {
            'Y' => "%Y",
            'y' => "%y",
            'm' => "%m",
            'd' => "%d",
            'e' => "%-d",
            'H' => "%H",
            'I' | 'h' => "%I",
            'i' => "%M",
            'S' | 's' => "%S",
            'p' => "%p",
            'j' => "%j",
            'F' => "%Y-%m-%d",
            'T' => "%H:%M:%S",
            'D' => "%m/%d/%y",
            'R' => "%H:%M",
            'u' => "%u",
            'w' => "%w",
            'a' => "%a",
            'b' => "%b",
            'M' => "%B",
            'W' => "%A",
            'c' => "%m",
            'k' => "%H",
            'l' => "%I",
            'n' => "\n",
            't' => "\t",
            '%' => "%%",
            'Q' => {
                out.push_str(&(dt.month0() / 3 + 1).to_string());
                continue;
            }
            other => return Err(format!("formatDateTime pattern %{other} is not supported")),
        };
        out.push_str(&dt.format(piece).to_string());
    }
    Ok(out)
}

fn unit_text(ctx: &Context<'_>, i: usize) -> String {
    text_arg(ctx, i).unwrap_or_default()
}

pub(super) fn register(conn: &Connection) -> Result<()> {
    let f = flags();
    conn.create_scalar_function("ch_to_date", 1, f, |ctx| {
        Ok(read(ctx, 0)?.map(|d| write(d, "date")))
    })?;
    conn.create_scalar_function("ch_to_datetime", 1, f, |ctx| {
        Ok(read(ctx, 0)?.map(|d| write(d, "datetime")))
    })?;
    conn.create_scalar_function("ch_to_datetime64", 2, f, |ctx| {
        let p = int_arg(ctx, 1).unwrap_or(3);
        Ok(read(ctx, 0)?.map(|d| write(d, &format!("datetime64:{p}"))))
    })?;
    conn.create_scalar_function("ch_add", 4, f, |ctx| {
        let (Some(dt), Some(n)) = (read(ctx, 0)?, int_arg(ctx, 1)) else {
            return Ok(None);
        };
        let shifted = add(dt, n, &unit_text(ctx, 2)).ok_or_else(|| fail("date out of range"))?;
        Ok(Some(write(shifted, &unit_text(ctx, 3))))
    })?;
    conn.create_scalar_function("ch_start_of", 4, f, |ctx| {
        let Some(dt) = read(ctx, 0)? else {
            return Ok(None);
        };
        let n = int_arg(ctx, 2).unwrap_or(1);
        let start = start_of(dt, &unit_text(ctx, 1), n).ok_or_else(|| fail("bad interval"))?;
        Ok(Some(write(start, &unit_text(ctx, 3))))
    })?;
    conn.create_scalar_function("ch_start_of_week", 2, f, |ctx| {
        let Some(dt) = read(ctx, 0)? else {
            return Ok(None);
        };
        let monday = int_arg(ctx, 1).unwrap_or(0) % 2 == 1;
        let back = if monday {
            dt.weekday().num_days_from_monday()
        } else {
            dt.weekday().num_days_from_sunday()
        };
        Ok(Some(write(dt - Duration::days(back.into()), "date")))
    })?;
    for (name, diff) in [
        (
            "ch_date_diff",
            date_diff as fn(&str, &NaiveDateTime, &NaiveDateTime) -> Option<i64>,
        ),
        ("ch_age", age),
    ] {
        conn.create_scalar_function(name, 3, f, move |ctx| {
            let (Some(a), Some(b)) = (read(ctx, 1)?, read(ctx, 2)?) else {
                return Ok(None);
            };
            diff(&unit_text(ctx, 0), &a, &b)
                .map(Some)
                .ok_or_else(|| fail("bad date unit"))
        })?;
    }
    conn.create_scalar_function("ch_date_part", 2, f, |ctx| {
        let Some(dt) = read(ctx, 1)? else {
            return Ok(None);
        };
        part(&unit_text(ctx, 0), &dt)
            .map(Some)
            .ok_or_else(|| fail("bad date part"))
    })?;
    conn.create_scalar_function("ch_format_datetime", 2, f, |ctx| {
        let Some(dt) = read(ctx, 0)? else {
            return Ok(None);
        };
        let pattern = unit_text(ctx, 1);
        // The widest piece (`%M`, `%W`: "September", "Wednesday") is 4.5 times its pattern.
        budget::value_u128("formatDateTime", pattern.len() as u128 * 5)?;
        budget::tick_n(pattern.len())?;
        format(&dt, &pattern).map(Some).map_err(fail)
    })?;
    Ok(())
}

/// `Value` helper used by tests.
#[allow(dead_code)]
pub(crate) fn text(v: &str) -> Value {
    Value::Text(v.to_owned())
}
