//! Time: Unix seconds inside, local wall-clock time at the edges.
//!
//! Accepted input forms (what utilities' exports contain):
//! `2024-07-09 0:01`, `2024-07-09 00:01:30`, `2024-07-09T00:01`, each optionally followed by
//! fractional seconds (dropped) and an offset `Z`, `+09:00`, `+0900` or `+09`.
//! A time with an offset is an absolute instant; one without is local time in the zone given to
//! [`LocalTimeParser`].
//!
//! Daylight saving, the two cases a local clock produces:
//! - a local time inside the spring-forward gap (e.g. 02:30 in Europe/Rome on the last Sunday of
//!   March) never happened: it is an error, never silently shifted;
//! - a local time inside the repeated autumn hour is ambiguous: the parser takes the earlier
//!   instant, unless the previous row of the same file was already at or after it, in which case
//!   it takes the later one. For a file in time order (what meters write) this maps the first
//!   `02:00` to summer time and the second `02:00` to winter time.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike};
use chrono_tz::Tz;

/// Integer Unix seconds, UTC: the one representation of an instant in storage and on the wire.
pub type Timestamp = i64;

/// Seconds in one hour.
pub const HOUR: i64 = 3600;
/// Seconds in one day (of 24 hours; local days around daylight-saving changes differ).
pub const DAY: i64 = 86_400;

/// The first year any input may name: nothing a device measured is older than Unix time.
pub const FIRST_YEAR: i32 = 1970;
/// The last year any input may name: a later one is a mistyped year, not a reading.
pub const LAST_YEAR: i32 = 2199;
/// The first instant of [`FIRST_YEAR`].
pub const EARLIEST: Timestamp = 0;
/// The instant after the end of [`LAST_YEAR`] (2200-01-01T00:00:00Z).
pub const AFTER_LATEST: Timestamp = 7_258_118_400;

/// Whether `ts` lies within the span any input may carry ([`EARLIEST`] to [`AFTER_LATEST`]).
pub fn in_span(ts: Timestamp) -> bool {
    (EARLIEST..AFTER_LATEST).contains(&ts)
}

/// Why a reading at `ts` is refused as one from the future: it lies more than `allowance`
/// seconds ahead of the clock `now`. One rule for every way readings arrive (live sources,
/// `hydrowatch import`): a mistyped year stored once would otherwise stand ahead of every later
/// reading.
pub fn from_the_future(ts: Timestamp, now: Timestamp, allowance: i64, tz: Tz) -> Option<String> {
    (ts > now.saturating_add(allowance)).then(|| {
        format!(
            "{} is {} s ahead of this computer's clock ({}): refused as a reading from the future (a mistyped date, or a clock set wrong)",
            format_local(ts, tz),
            ts.saturating_sub(now),
            format_local(now, tz)
        )
    })
}

/// Why a time could not be understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TimeError {
    /// The text is not one of the accepted forms.
    #[error(
        "not a time: expected YYYY-MM-DD HH:MM[:SS] (or with 'T'), optionally with an offset such as +09:00 or Z"
    )]
    Format,
    /// The text has the right form but a field is out of range (month 13, minute 61, ...).
    #[error("not a valid date or time (a field is out of range)")]
    Range,
    /// A year before [`FIRST_YEAR`] or after [`LAST_YEAR`]: a mistyped year.
    #[error("the year is outside {FIRST_YEAR}-{LAST_YEAR} (a mistyped year?)")]
    OutOfSpan,
    /// A local time that the zone's clock skipped (daylight saving started).
    #[error("local time does not exist in {tz}: clocks jumped forward over it (daylight saving)")]
    Nonexistent {
        /// The zone in which the time was read.
        tz: Tz,
    },
}

/// A parsed time: either an absolute instant or a wall-clock time to be placed in a zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParsedTime {
    /// The text carried an offset or `Z`.
    Absolute(Timestamp),
    /// The text carried no offset.
    Local(NaiveDateTime),
}

/// Parses one time in any accepted form (see the module header), without a zone.
pub fn parse_time(text: &str) -> Result<ParsedTime, TimeError> {
    let b = text.trim().as_bytes();
    let mut p = Cursor { b, i: 0 };
    let year = p.digits(4, 4)? as i32;
    let year_ok = (FIRST_YEAR..=LAST_YEAR).contains(&year);
    p.expect(b'-')?;
    let month = p.digits(1, 2)?;
    p.expect(b'-')?;
    let day = p.digits(1, 2)?;
    match p.next() {
        Some(b' ' | b'T' | b't') => {}
        _ => return Err(TimeError::Format),
    }
    let hour = p.digits(1, 2)?;
    p.expect(b':')?;
    let minute = p.digits(2, 2)?;
    let mut second = 0;
    if p.peek() == Some(b':') {
        p.i += 1;
        second = p.digits(2, 2)?;
        if p.peek() == Some(b'.') {
            p.i += 1;
            p.digits(1, 9)?;
        }
    }
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or(TimeError::Range)?;
    let time = NaiveTime::from_hms_opt(hour, minute, second).ok_or(TimeError::Range)?;
    let naive = NaiveDateTime::new(date, time);
    let offset = match p.next() {
        None if !year_ok => return Err(TimeError::OutOfSpan),
        None => return Ok(ParsedTime::Local(naive)),
        Some(b'Z' | b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let hh = p.digits(2, 2)? as i64;
            if p.peek() == Some(b':') {
                p.i += 1;
            }
            let mm = if p.peek().is_some() {
                p.digits(2, 2)? as i64
            } else {
                0
            };
            if hh > 23 || mm > 59 {
                return Err(TimeError::Range);
            }
            let secs = hh * HOUR + mm * 60;
            if sign == b'-' { -secs } else { secs }
        }
        Some(_) => return Err(TimeError::Format),
    };
    if p.peek().is_some() {
        return Err(TimeError::Format);
    }
    let ts = naive.and_utc().timestamp() - offset;
    if !year_ok || !in_span(ts) {
        return Err(TimeError::OutOfSpan);
    }
    Ok(ParsedTime::Absolute(ts))
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.i += usize::from(c.is_some());
        c
    }
    fn expect(&mut self, c: u8) -> Result<(), TimeError> {
        if self.next() == Some(c) {
            Ok(())
        } else {
            Err(TimeError::Format)
        }
    }
    /// Reads between `min` and `max` ASCII digits as a number.
    fn digits(&mut self, min: usize, max: usize) -> Result<u32, TimeError> {
        let start = self.i;
        let mut v: u32 = 0;
        while self.i - start < max {
            match self.peek() {
                Some(c @ b'0'..=b'9') => {
                    v = v.saturating_mul(10).saturating_add(u32::from(c - b'0'));
                    self.i += 1;
                }
                _ => break,
            }
        }
        if self.i - start < min {
            Err(TimeError::Format)
        } else {
            Ok(v)
        }
    }
}

/// Turns the times of one file (in file order) into [`Timestamp`]s, local times being read in one
/// zone; resolves the repeated autumn hour by file order as the module header describes.
#[derive(Debug, Clone)]
pub struct LocalTimeParser {
    tz: Tz,
    last: Option<Timestamp>,
    /// The last local hour converted and its UTC offset in seconds: consecutive rows of minute
    /// data share it, which saves a zone look-up per row. (Zones that change clocks at a
    /// half hour, like Australia/Lord_Howe, could mis-read a skipped half hour that follows a
    /// valid one of the same hour out of file order; no meter writes that.)
    cached_hour: Option<(NaiveDateTime, i64)>,
}

impl LocalTimeParser {
    /// A parser for one file whose local times are in `tz`.
    pub fn new(tz: Tz) -> Self {
        LocalTimeParser {
            tz,
            last: None,
            cached_hour: None,
        }
    }

    /// Parses the next time of the file.
    pub fn parse(&mut self, text: &str) -> Result<Timestamp, TimeError> {
        self.parse_after(text, None)
    }

    /// Parses the next time, a local time of the repeated autumn hour being placed after
    /// `after` too (the newest reading stored of its series), as after the time parsed before:
    /// for lines that arrive on new connections, whose "previous row" is in the database.
    pub fn parse_after(
        &mut self,
        text: &str,
        after: Option<Timestamp>,
    ) -> Result<Timestamp, TimeError> {
        let ts = match parse_time(text)? {
            ParsedTime::Absolute(ts) => ts,
            ParsedTime::Local(naive) => self.resolve(naive, self.last.max(after))?,
        };
        self.last = Some(ts);
        Ok(ts)
    }

    fn resolve(
        &mut self,
        naive: NaiveDateTime,
        before: Option<Timestamp>,
    ) -> Result<Timestamp, TimeError> {
        let hour = naive
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .unwrap_or(naive);
        if let Some((h, offset)) = self.cached_hour
            && h == hour
        {
            return Ok(naive.and_utc().timestamp() - offset);
        }
        let (ts, unambiguous) = match self.tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => (t.timestamp(), true),
            LocalResult::Ambiguous(early, late) => {
                let early = early.timestamp();
                match before {
                    Some(last) if last >= early => (late.timestamp(), false),
                    _ => (early, false),
                }
            }
            LocalResult::None => return Err(TimeError::Nonexistent { tz: self.tz }),
        };
        // Only an hour that maps one way may be reused: inside the repeated hour, each row
        // must be resolved against the one before it.
        self.cached_hour = unambiguous.then(|| (hour, naive.and_utc().timestamp() - ts));
        Ok(ts)
    }
}

/// Formats an instant as local time `YYYY-MM-DD HH:MM` in `tz` (the prototype's format).
pub fn format_local(ts: Timestamp, tz: Tz) -> String {
    match DateTime::from_timestamp(ts, 0) {
        Some(t) => t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
        None => format!("@{ts}"),
    }
}

/// Formats an instant as RFC 3339 local time in `tz` with its offset, to the second
/// (`2024-01-29T19:01:05+09:00`): unambiguous across daylight saving, and it keeps the
/// reading's full resolution.
pub fn format_rfc3339_local(ts: Timestamp, tz: Tz) -> String {
    match DateTime::from_timestamp(ts, 0) {
        Some(t) => t
            .with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        None => format!("@{ts}"),
    }
}

/// The offset (seconds, modulo one hour) at which a zone's hours start relative to UTC hours:
/// 0 for most zones, 1800 for India (+05:30) or Adelaide (+09:30), 2700 for Nepal (+05:45).
/// Hourly buckets start at `ts ≡ phase (mod 3600)`, so they are whole local hours.
pub fn hour_phase(tz: Tz) -> i64 {
    use chrono::Offset;
    // The zone's offset now; zones whose sub-hour offset changed in the past are not a concern
    // for a device's year of data.
    let now = chrono::Utc::now();
    let offset = tz
        .offset_from_utc_datetime(&now.naive_utc())
        .fix()
        .local_minus_utc() as i64;
    offset.rem_euclid(HOUR)
}

/// The local calendar date of `ts` in `tz`.
pub fn local_date(ts: Timestamp, tz: Tz) -> NaiveDate {
    DateTime::from_timestamp(ts, 0).map_or(NaiveDate::MIN, |t| t.with_timezone(&tz).date_naive())
}

/// The first instant of local date `date` in `tz`: local midnight, or, in zones whose clocks
/// skip midnight on a daylight-saving day, the first local time that exists.
pub fn local_day_start(date: NaiveDate, tz: Tz) -> Timestamp {
    let midnight = date.and_time(NaiveTime::MIN);
    (0..=24 * 4)
        .find_map(|quarter| {
            tz.from_local_datetime(&(midnight + chrono::Duration::minutes(15 * quarter)))
                .earliest()
        })
        .map_or(midnight.and_utc().timestamp(), |t| t.timestamp())
}

/// The start of the hourly bucket holding `ts`, for buckets starting at `phase` (see
/// [`hour_phase`]).
pub fn hour_start(ts: Timestamp, phase: i64) -> Timestamp {
    ts - (ts - phase).rem_euclid(HOUR)
}

/// A span of time for people: minutes below two hours, hours below two days, else days.
pub fn for_people(seconds: f64) -> String {
    let minutes = seconds / 60.0;
    if minutes < 120.0 {
        format!("{minutes:.0} min")
    } else if minutes < 48.0 * 60.0 {
        format!("{:.1} h", minutes / 60.0)
    } else {
        format!("{:.1} days", minutes / 1440.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_for_people_change_unit_at_two_hours_and_two_days() {
        assert_eq!(for_people(90.0 * 60.0), "90 min");
        assert_eq!(for_people(3.0 * 3600.0), "3.0 h");
        assert_eq!(for_people(3.0 * 86_400.0), "3.0 days");
    }

    fn utc(s: &str) -> Timestamp {
        match parse_time(s).unwrap() {
            ParsedTime::Absolute(t) => t,
            ParsedTime::Local(n) => n.and_utc().timestamp(),
        }
    }

    #[test]
    fn years_outside_the_span_are_refused() {
        for bad in [
            "1969-12-31 23:59",
            "0001-01-01 00:00",
            "2200-01-01 00:00",
            "9999-12-31T23:00:00Z",
            "1970-01-01T00:30:00+01:00",
        ] {
            assert_eq!(parse_time(bad), Err(TimeError::OutOfSpan), "{bad}");
        }
        assert!(parse_time("1970-01-01T00:00:00Z").is_ok());
        assert!(parse_time("2199-12-31T23:59:59Z").is_ok());
        // Within the span: only the clock can tell that 2062 is a mistake.
        assert!(parse_time("2062-07-01 00:00").is_ok());
    }

    #[test]
    fn readings_ahead_of_the_clock_are_from_the_future() {
        let now = utc("2026-11-30 12:00Z");
        let tz = chrono_tz::UTC;
        assert_eq!(from_the_future(now + 60, now, 60, tz), None);
        let why = from_the_future(utc("2062-11-30 12:00Z"), now, 60, tz).unwrap();
        assert!(why.contains("2062-11-30 12:00"), "{why}");
        assert!(why.contains("from the future"), "{why}");
    }

    #[test]
    fn the_repeated_hour_is_placed_after_the_newest_stored_reading() {
        let rome: Tz = "Europe/Rome".parse().unwrap();
        // 2024-10-27 02:30 happened twice: 00:30Z (summer time) and 01:30Z (winter time).
        let (summer, winter) = (utc("2024-10-27 00:30Z"), utc("2024-10-27 01:30Z"));
        // A new connection knows nothing: the first instant.
        assert_eq!(
            LocalTimeParser::new(rome)
                .parse("2024-10-27 02:30")
                .unwrap(),
            summer
        );
        // The series already holds the summer-time reading: the later instant.
        let mut p = LocalTimeParser::new(rome);
        assert_eq!(
            p.parse_after("2024-10-27 02:30", Some(summer)).unwrap(),
            winter
        );
        // A stored reading before the repeated hour does not move it.
        let mut p = LocalTimeParser::new(rome);
        assert_eq!(
            p.parse_after("2024-10-27 02:30", Some(summer - 3600))
                .unwrap(),
            summer
        );
    }

    #[test]
    fn accepted_forms() {
        let seoul: Tz = "Asia/Seoul".parse().unwrap();
        let mut p = LocalTimeParser::new(seoul);
        let base = utc("2024-07-08 15:01Z");
        assert_eq!(p.parse("2024-07-09 0:01").unwrap(), base);
        assert_eq!(p.parse("2024-07-09 00:01").unwrap(), base);
        assert_eq!(p.parse("2024-07-09T00:01:00").unwrap(), base);
        assert_eq!(p.parse("2024-07-09 00:01:00.250").unwrap(), base);
        assert_eq!(p.parse("2024-07-09T00:01:00+09:00").unwrap(), base);
        assert_eq!(p.parse("2024-07-09T00:01+0900").unwrap(), base);
        assert_eq!(p.parse("2024-07-09 00:01+09").unwrap(), base);
        assert_eq!(p.parse("2024-07-08T15:01:00Z").unwrap(), base);
        assert_eq!(p.parse("2024-07-08T10:01:00-05:00").unwrap(), base);
        assert_eq!(p.parse(" 2024-07-09 00:01 ").unwrap(), base);
    }

    #[test]
    fn rejected_forms() {
        for bad in [
            "",
            "2024-07-09",
            "2024/07/09 00:01",
            "09.07.2024 00:01",
            "2024-07-09 00:1",
            "2024-07-09 00:01:00 junk",
            "2024-07-09 00:01+9",
            "hello",
        ] {
            assert_eq!(parse_time(bad), Err(TimeError::Format), "{bad:?}");
        }
        for bad in [
            "2024-13-01 00:00",
            "2024-02-30 00:00",
            "2024-07-09 24:00",
            "2024-07-09 00:60",
        ] {
            assert_eq!(parse_time(bad), Err(TimeError::Range), "{bad:?}");
        }
    }

    #[test]
    fn spring_gap_is_an_error() {
        let rome: Tz = "Europe/Rome".parse().unwrap();
        let mut p = LocalTimeParser::new(rome);
        assert!(p.parse("2021-03-28 01:00").is_ok());
        assert_eq!(
            p.parse("2021-03-28 02:00"),
            Err(TimeError::Nonexistent { tz: rome })
        );
        assert_eq!(
            p.parse("2021-03-28 02:59"),
            Err(TimeError::Nonexistent { tz: rome })
        );
        // 01:00 CET and 03:00 CEST are one hour apart.
        let a = p.parse("2021-03-28 01:00").unwrap();
        let b = p.parse("2021-03-28 03:00").unwrap();
        assert_eq!(b - a, HOUR);
    }

    #[test]
    fn repeated_autumn_hour_follows_file_order() {
        let rome: Tz = "Europe/Rome".parse().unwrap();
        let mut p = LocalTimeParser::new(rome);
        let rows = [
            "2021-10-31 01:00",
            "2021-10-31 02:00",
            "2021-10-31 02:00",
            "2021-10-31 03:00",
        ];
        let ts: Vec<_> = rows.iter().map(|r| p.parse(r).unwrap()).collect();
        assert_eq!(ts[0], utc("2021-10-30T23:00:00Z"));
        assert_eq!(ts[1], utc("2021-10-31T00:00:00Z"), "first 02:00 is CEST");
        assert_eq!(ts[2], utc("2021-10-31T01:00:00Z"), "second 02:00 is CET");
        assert_eq!(ts[3], utc("2021-10-31T02:00:00Z"));

        // Minute data through the repeated hour: strictly increasing, 60 s apart.
        let mut p = LocalTimeParser::new(rome);
        let mut prev = p.parse("2021-10-31 01:59").unwrap();
        for _pass in 0..2 {
            for m in 0..60 {
                let t = p.parse(&format!("2021-10-31 02:{m:02}")).unwrap();
                assert_eq!(t - prev, 60);
                prev = t;
            }
        }
        assert_eq!(p.parse("2021-10-31 03:00").unwrap() - prev, 60);
    }

    #[test]
    fn formatting_round_trips() {
        let rome: Tz = "Europe/Rome".parse().unwrap();
        let t = utc("2021-10-31T01:30:00Z");
        assert_eq!(format_local(t, rome), "2021-10-31 02:30");
    }

    #[test]
    fn local_days() {
        let rome: Tz = "Europe/Rome".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2021, 10, 31).unwrap();
        assert_eq!(local_day_start(d, rome), utc("2021-10-30T22:00:00Z"));
        let next = local_day_start(d.succ_opt().unwrap(), rome);
        assert_eq!(
            next - local_day_start(d, rome),
            25 * HOUR,
            "the autumn day has 25 hours"
        );
        assert_eq!(local_date(next - 1, rome), d);
        // Santiago skipped midnight on 2022-09-11: the day starts at 01:00 local.
        let santiago: Tz = "America/Santiago".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2022, 9, 11).unwrap();
        assert_eq!(
            format_local(local_day_start(d, santiago), santiago),
            "2022-09-11 01:00"
        );
    }

    #[test]
    fn hour_buckets_follow_local_hours() {
        let kolkata: Tz = "Asia/Kolkata".parse().unwrap();
        let phase = hour_phase(kolkata);
        assert_eq!(phase, 1800);
        let t = utc("2024-01-01T10:45:00Z"); // 16:15 local
        assert_eq!(hour_start(t, phase), utc("2024-01-01T10:30:00Z")); // 16:00 local
        assert_eq!(hour_start(t, 0), utc("2024-01-01T10:00:00Z"));
        assert_eq!(
            hour_start(utc("2024-01-01T10:00:00Z"), 0),
            utc("2024-01-01T10:00:00Z")
        );
        assert_eq!(hour_start(-1, 0), -HOUR);
    }
}
