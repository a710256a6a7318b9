//! Python's `datetime` objects (`datetime`, `date`, `time`, `timedelta`, `timezone`, and
//! `zoneinfo.ZoneInfo` as a time zone) as pickles build them, and the calendar and ISO 8601
//! durations that numpy's datetime64 / timedelta64 share with them.

use mmappickle::{Construct, Object, Value};

use crate::pretty::push_repr;
use crate::scalars::str_repr;

/// An object of Python's `datetime` module, as its pickle describes it.
#[derive(Debug, Clone, PartialEq)]
pub enum PythonTime<'a> {
    /// `datetime.datetime`.
    DateTime {
        /// The day.
        date: Date,
        /// The time of day.
        time: TimeOfDay,
        /// The `tzinfo`, when aware.
        zone: Option<&'a Value>,
    },
    /// `datetime.date`.
    Date(Date),
    /// `datetime.time`.
    Time {
        /// The time of day.
        time: TimeOfDay,
        /// The `tzinfo`, when aware.
        zone: Option<&'a Value>,
    },
    /// `datetime.timedelta`.
    TimeDelta(TimeDelta),
    /// `datetime.timezone`: a fixed offset, maybe named.
    TimeZone {
        /// The offset from UTC.
        offset: TimeDelta,
        /// Its name, when one was given.
        name: Option<&'a str>,
    },
    /// `zoneinfo.ZoneInfo(key)`.
    ZoneInfo(&'a str),
}

/// A proleptic Gregorian date, in Python's range (years 1 to 9999).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

/// A time of day to the microsecond, with the `fold` of a repeated wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    hour: u8,
    minute: u8,
    second: u8,
    microsecond: u32,
    fold: bool,
}

/// A `timedelta` as Python normalises it: whole days, then 0 <= seconds < 86400 and
/// 0 <= microseconds < 10^6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeDelta {
    days: i64,
    seconds: i64,
    microseconds: i64,
}

/// What a pickle of the `datetime` module holds, recognised; `None` for anything else or
/// for fields Python would refuse.
pub fn python_time(object: &Object) -> Option<PythonTime<'_>> {
    if object.construct != Construct::Reduce
        || !object.kwargs.is_empty()
        || !object.list_items.is_empty()
        || !object.dict_items.is_empty()
        || object.state.is_some()
    {
        return None;
    }
    if is_zoneinfo_unpickle(&object.callable) {
        return match object.args.as_slice() {
            [Value::Str(key), Value::Int(_)] => Some(PythonTime::ZoneInfo(key)),
            _ => None,
        };
    }
    let Value::Global(global) = &object.callable else {
        return None;
    };
    if global.module != "datetime" {
        return None;
    }
    let args = object.args.as_slice();
    // The state bytes: a date's 4, a time's 6, a datetime's 10 (the fold bit in the month
    // byte of a datetime, in the hour byte of a time); then the tzinfo, if any.
    match (global.name.as_str(), args) {
        ("datetime", [Value::Bytes(state), rest @ ..]) if state.len() == 10 => {
            let date = Date::from_state(state[0], state[1], state[2] & 0x7f, state[3])?;
            let time = TimeOfDay::from_state(state[4], &state[5..], state[2] & 0x80 != 0)?;
            Some(PythonTime::DateTime {
                date,
                time,
                zone: zone_of(rest)?,
            })
        }
        ("date", [Value::Bytes(state)]) if state.len() == 4 => Some(PythonTime::Date(
            Date::from_state(state[0], state[1], state[2], state[3])?,
        )),
        ("time", [Value::Bytes(state), rest @ ..]) if state.len() == 6 => {
            let time = TimeOfDay::from_state(state[0] & 0x7f, &state[1..], state[0] & 0x80 != 0)?;
            Some(PythonTime::Time {
                time,
                zone: zone_of(rest)?,
            })
        }
        ("timedelta", [Value::Int(days), Value::Int(seconds), Value::Int(microseconds)]) => Some(
            PythonTime::TimeDelta(TimeDelta::new(*days, *seconds, *microseconds)?),
        ),
        ("timezone", [Value::Object(offset), rest @ ..]) => {
            let Some(PythonTime::TimeDelta(offset)) = python_time(offset) else {
                return None;
            };
            // Strictly inside a day either way, as Python requires.
            if offset.total_microseconds().abs() >= 86_400 * 1_000_000 {
                return None;
            }
            let name = match rest {
                [] => None,
                [Value::Str(name)] => Some(name.as_str()),
                _ => return None,
            };
            Some(PythonTime::TimeZone { offset, name })
        }
        _ => None,
    }
}

/// The tzinfo after a pickled state: none, `None`, or one value.
fn zone_of(rest: &[Value]) -> Option<Option<&Value>> {
    match rest {
        [] | [Value::None] => Some(None),
        [zone] => Some(Some(zone)),
        _ => None,
    }
}

/// `zoneinfo.ZoneInfo._unpickle`: a dotted name (protocol 4) or `getattr(ZoneInfo, "_unpickle")`.
fn is_zoneinfo_unpickle(callable: &Value) -> bool {
    match callable {
        Value::Global(global) => global.module == "zoneinfo" && global.name == "ZoneInfo._unpickle",
        Value::Object(getattr) => {
            matches!(&getattr.callable, Value::Global(g) if g.name == "getattr" && (g.module == "builtins" || g.module == "__builtin__"))
                && matches!(getattr.args.as_slice(), [Value::Global(g), Value::Str(attribute)]
                    if g.module == "zoneinfo" && g.name == "ZoneInfo" && attribute == "_unpickle")
        }
        _ => false,
    }
}

impl Date {
    fn from_state(year_high: u8, year_low: u8, month: u8, day: u8) -> Option<Date> {
        let year = u16::from_be_bytes([year_high, year_low]);
        let valid = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && u32::from(day) <= days_in_month(i128::from(year), u32::from(month));
        valid.then_some(Date { year, month, day })
    }

    /// `2021-03-04`.
    fn iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl TimeOfDay {
    fn from_state(hour: u8, rest: &[u8], fold: bool) -> Option<TimeOfDay> {
        let [minute, second, us_high, us_mid, us_low] = *rest else {
            return None;
        };
        let microsecond = u32::from_be_bytes([0, us_high, us_mid, us_low]);
        let valid = hour < 24 && minute < 60 && second < 60 && microsecond < 1_000_000;
        valid.then_some(TimeOfDay {
            hour,
            minute,
            second,
            microsecond,
            fold,
        })
    }

    /// The fields `repr` shows: hour and minute always, then second and microsecond up to
    /// the last that is not zero.
    fn repr_fields(&self) -> String {
        let mut text = format!("{}, {}", self.hour, self.minute);
        if self.second != 0 || self.microsecond != 0 {
            text.push_str(&format!(", {}", self.second));
        }
        if self.microsecond != 0 {
            text.push_str(&format!(", {}", self.microsecond));
        }
        text
    }

    /// `05:06:07`, `05:06:07.890123`.
    fn iso(&self) -> String {
        let mut text = format!("{:02}:{:02}:{:02}", self.hour, self.minute, self.second);
        if self.microsecond != 0 {
            text.push_str(&format!(".{:06}", self.microsecond));
        }
        text
    }
}

impl TimeDelta {
    fn new(days: i64, seconds: i64, microseconds: i64) -> Option<TimeDelta> {
        let valid = days.abs() <= 999_999_999
            && (0..86_400).contains(&seconds)
            && (0..1_000_000).contains(&microseconds);
        valid.then_some(TimeDelta {
            days,
            seconds,
            microseconds,
        })
    }

    fn total_microseconds(&self) -> i128 {
        (i128::from(self.days) * 86_400 + i128::from(self.seconds)) * 1_000_000
            + i128::from(self.microseconds)
    }

    /// `datetime.timedelta(days=1, seconds=5)`, `datetime.timedelta(0)`.
    fn repr(&self) -> String {
        let fields: Vec<String> = [
            ("days", self.days),
            ("seconds", self.seconds),
            ("microseconds", self.microseconds),
        ]
        .iter()
        .filter(|(_, value)| *value != 0)
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
        if fields.is_empty() {
            "datetime.timedelta(0)".to_owned()
        } else {
            format!("datetime.timedelta({})", fields.join(", "))
        }
    }

    /// An offset from UTC as `isoformat` writes it: `+01:00`, `-00:00:05.000001`.
    fn iso_offset(&self) -> String {
        let total = self.total_microseconds();
        let sign = if total < 0 { '-' } else { '+' };
        let magnitude = total.unsigned_abs();
        let (seconds, microseconds) = (magnitude / 1_000_000, magnitude % 1_000_000);
        let mut text = format!("{sign}{:02}:{:02}", seconds / 3600, seconds / 60 % 60);
        if seconds % 60 != 0 || microseconds != 0 {
            text.push_str(&format!(":{:02}", seconds % 60));
        }
        if microseconds != 0 {
            text.push_str(&format!(".{microseconds:06}"));
        }
        text
    }
}

impl PythonTime<'_> {
    /// Python's `repr`.
    pub fn push_repr(&self, out: &mut String) {
        let push_zone = |zone: &Option<&Value>, out: &mut String| {
            if let Some(zone) = zone {
                out.push_str(", tzinfo=");
                push_repr(zone, out);
            }
        };
        match self {
            PythonTime::DateTime { date, time, zone } => {
                out.push_str(&format!(
                    "datetime.datetime({}, {}, {}, {}",
                    date.year,
                    date.month,
                    date.day,
                    time.repr_fields()
                ));
                // `datetime` writes the fold before the zone, `time` after it.
                if time.fold {
                    out.push_str(", fold=1");
                }
                push_zone(zone, out);
                out.push(')');
            }
            PythonTime::Date(date) => out.push_str(&format!(
                "datetime.date({}, {}, {})",
                date.year, date.month, date.day
            )),
            PythonTime::Time { time, zone } => {
                out.push_str(&format!("datetime.time({}", time.repr_fields()));
                push_zone(zone, out);
                if time.fold {
                    out.push_str(", fold=1");
                }
                out.push(')');
            }
            PythonTime::TimeDelta(delta) => out.push_str(&delta.repr()),
            // `timezone(timedelta(0))` unpickles to the `utc` singleton.
            PythonTime::TimeZone { offset, name: None } if offset.total_microseconds() == 0 => {
                out.push_str("datetime.timezone.utc");
            }
            PythonTime::TimeZone { offset, name } => {
                out.push_str("datetime.timezone(");
                out.push_str(&offset.repr());
                if let Some(name) = name {
                    out.push_str(", ");
                    out.push_str(&str_repr(name));
                }
                out.push(')');
            }
            PythonTime::ZoneInfo(key) => {
                out.push_str(&format!("zoneinfo.ZoneInfo(key={})", str_repr(key)));
            }
        }
    }

    /// ISO 8601 text: `isoformat()` of a date, time or datetime (naive, or with a fixed
    /// offset; `None` with another time zone, whose offset needs its rules), a duration
    /// for a timedelta; `None` for a time zone.
    pub fn iso(&self) -> Option<String> {
        let offset = |zone: &Option<&Value>| -> Option<String> {
            match zone {
                None => Some(String::new()),
                Some(Value::Object(zone)) => match python_time(zone)? {
                    PythonTime::TimeZone { offset, .. } => Some(offset.iso_offset()),
                    _ => None,
                },
                Some(_) => None,
            }
        };
        match self {
            PythonTime::DateTime { date, time, zone } => {
                Some(format!("{}T{}{}", date.iso(), time.iso(), offset(zone)?))
            }
            PythonTime::Date(date) => Some(date.iso()),
            PythonTime::Time { time, zone } => Some(format!("{}{}", time.iso(), offset(zone)?)),
            PythonTime::TimeDelta(delta) => {
                iso_duration(delta.total_microseconds(), DurationUnit::Fraction(6))
            }
            PythonTime::TimeZone { .. } | PythonTime::ZoneInfo(_) => None,
        }
    }
}

fn is_leap(year: i128) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i128, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The proleptic Gregorian (year, month, day) `days` after 1970-01-01 (before it when
/// negative), for any count (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i128) -> (i128, u32, u32) {
    let shifted = days + 719_468; // from 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i128::from(month <= 2);
    (year, month, day)
}

/// The unit of a count that [`iso_duration`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationUnit {
    /// Calendar years (`P3Y`).
    Years,
    /// Calendar months (`P3M`).
    Months,
    /// Whole seconds per unit (a day is 86400).
    Seconds(u128),
    /// A fraction of a second of this many decimal digits (3 for milliseconds).
    Fraction(u32),
}

/// `count` units as an ISO 8601 duration: `P1DT2H3M4.5S`, zero parts left out (`PT0S`
/// for nothing), a `-` before a negative one; `None` when it overflows.
pub fn iso_duration(count: i128, unit: DurationUnit) -> Option<String> {
    let sign = if count < 0 { "-" } else { "" };
    let magnitude = count.unsigned_abs();
    let (seconds, fraction, digits) = match unit {
        DurationUnit::Years => return Some(format!("{sign}P{magnitude}Y")),
        DurationUnit::Months => return Some(format!("{sign}P{magnitude}M")),
        DurationUnit::Seconds(per_unit) => (magnitude.checked_mul(per_unit)?, 0, 0),
        DurationUnit::Fraction(digits) => {
            let per_second = 10u128.pow(digits);
            (magnitude / per_second, magnitude % per_second, digits)
        }
    };
    let (days, in_day) = (seconds / 86_400, seconds % 86_400);
    let mut text = format!("{sign}P");
    if days > 0 {
        text.push_str(&format!("{days}D"));
    }
    if in_day > 0 || fraction > 0 || days == 0 {
        text.push('T');
        let (hours, minutes, seconds) = (in_day / 3600, in_day / 60 % 60, in_day % 60);
        if hours > 0 {
            text.push_str(&format!("{hours}H"));
        }
        if minutes > 0 {
            text.push_str(&format!("{minutes}M"));
        }
        if seconds > 0 || fraction > 0 || in_day == 0 {
            text.push_str(&seconds.to_string());
            if fraction > 0 {
                let fraction = format!("{fraction:0width$}", width = digits as usize);
                text.push('.');
                text.push_str(fraction.trim_end_matches('0'));
            }
            text.push('S');
        }
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_of_day_counts() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(18_690), (2021, 3, 4));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
    }

    #[test]
    fn durations() {
        assert_eq!(iso_duration(0, DurationUnit::Seconds(1)).unwrap(), "PT0S");
        assert_eq!(
            iso_duration(86_400, DurationUnit::Seconds(1)).unwrap(),
            "P1D"
        );
        assert_eq!(
            iso_duration(-1, DurationUnit::Fraction(6)).unwrap(),
            "-PT0.000001S"
        );
        assert_eq!(
            iso_duration(3_600_000, DurationUnit::Fraction(3)).unwrap(),
            "PT1H"
        );
        assert_eq!(
            iso_duration(i128::MAX, DurationUnit::Seconds(604_800)),
            None
        );
    }

    #[test]
    fn fields_python_refuses_are_not_recognised() {
        use mmappickle::Global;
        let date = |state: &[u8]| {
            let object = Object::new(
                Construct::Reduce,
                Value::Global(Global::new("datetime", "date")),
                vec![Value::Bytes(state.to_vec())],
            );
            python_time(&object).map(|time| {
                let mut out = String::new();
                time.push_repr(&mut out);
                out
            })
        };
        assert_eq!(
            date(&[7, 228, 2, 29]).unwrap(),
            "datetime.date(2020, 2, 29)"
        );
        assert_eq!(date(&[7, 229, 2, 29]), None);
        assert_eq!(date(&[0, 0, 1, 1]), None);
        assert_eq!(date(&[7, 229, 13, 1]), None);
        assert_eq!(date(&[7, 229, 1]), None);
    }
}
