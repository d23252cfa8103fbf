//! Calendar features of an hour, in the device's local time: hour of day and day of week as
//! points on a circle (so 23:00 is next to 00:00), and a day-off flag (weekend or holiday); and
//! the device's days off: the national public holidays of its country, which its time zone
//! names unless the configuration does, plus the days the configuration lists.
//!
//! National holidays come from the `holidays` crate (tables generated from Python's `holidays`
//! package, 2000-2030, about 100 countries, the lunar holidays of Korea and China included);
//! `holidays-rs` computes its rules for any year but covers neither Korea, the default zone's
//! country, nor Japan, China or India. A calendar says until when it is known, so that a device
//! past 2030 is told its holidays ran out instead of losing them silently. A region's own
//! holidays (a state's, a province's patron saint) come from an embedded table generated from
//! the same Python package (data/regional_holidays.py): no Rust crate has them.

use chrono::{Datelike, NaiveDate, Timelike, Weekday};
use chrono_tz::Tz;
use hydrowatch_core::Timestamp;
use hydrowatch_core::time::DAY;

use crate::{ForecastError, History};

/// The tz database's country of each zone name (see data/zone_country.py).
const ZONE_COUNTRY: &str = include_str!("../data/zone-country.tsv");
/// The years the national calendars cover.
const CALENDAR_YEARS: std::ops::Range<i32> = 2000..2031;
/// The holidays that subdivisions keep besides the national ones, gzipped TSV (see
/// data/regional_holidays.py): `country, region, date, name`; a line without a date per region.
const REGIONAL: &[u8] = include_bytes!("../data/regional-holidays.tsv.gz");

/// The ISO 3166 country code of the IANA zone `zone` (`Europe/Rome` gives `IT`), if it has one
/// (`UTC` has none).
pub fn country_of_zone(zone: &str) -> Option<&'static str> {
    ZONE_COUNTRY
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .find(|(z, _)| *z == zone)
        .map(|(_, c)| c)
}

/// A device's days off and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceCalendar {
    /// The country whose national holidays are in, as an ISO 3166 code.
    pub country: Option<String>,
    /// Where the country came from, for people (`the time zone Europe/Rome`, `[forecast] country`).
    pub source: String,
    /// The region whose own holidays are in too (`[forecast] region`).
    pub region: Option<String>,
    /// The last day the national calendar knows (`None`: no national calendar).
    pub known_until: Option<NaiveDate>,
    /// The national holidays of the covered years and the listed days, sorted.
    pub holidays: Holidays,
    /// How many of them were listed in the configuration.
    pub listed: usize,
}

impl DeviceCalendar {
    /// The last day of the national calendar, when it is before `today`: the device has no
    /// national holidays from then on (the daemon warns, `config check` says so).
    pub fn ended(&self, today: NaiveDate) -> Option<NaiveDate> {
        self.known_until.filter(|until| *until < today)
    }

    /// One line for logs and `config check`: which calendar is in force and until when.
    pub fn describe(&self) -> String {
        let region = self
            .region
            .as_ref()
            .map_or_else(String::new, |r| format!(" and those of its region {r}"));
        let national = match (&self.country, self.known_until) {
            (Some(c), Some(until)) => format!(
                "national public holidays of {c} (from {}){region}, known until {until}",
                self.source
            ),
            (Some(c), None) => format!("no national calendar for {c} (from {})", self.source),
            (None, _) => format!("no national calendar ({})", self.source),
        };
        format!(
            "{national}; plus {} listed in [forecast] holidays",
            self.listed
        )
    }
}

/// The days off of a device in `zone`: the national holidays of `country` (an ISO 3166 code),
/// or of the zone's country when `country` is `None`, with those of its `region` (a
/// subdivision code such as `RM` for Rome or `CA` for California), plus the `listed` days.
/// `country = "none"` turns the national calendar off. A malformed country code, or a region
/// its country does not have, is an error; a country without a calendar, or a zone without a
/// country, gives the listed days alone, and says so.
pub fn device_calendar(
    zone: Tz,
    country: Option<&str>,
    region: Option<&str>,
    listed: &[NaiveDate],
) -> Result<DeviceCalendar, ForecastError> {
    let (code, source) = match country {
        Some(c) if c.eq_ignore_ascii_case("none") => {
            (None, "[forecast] country = \"none\"".to_string())
        }
        Some(c) => (
            Some(c.to_ascii_uppercase()),
            "[forecast] country".to_string(),
        ),
        None => match country_of_zone(zone.name()) {
            Some(c) => (
                Some(c.to_string()),
                format!("the time zone {}", zone.name()),
            ),
            None => (
                None,
                format!("the time zone {} names no country", zone.name()),
            ),
        },
    };
    if let Some(c) = &code
        && (c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(ForecastError::Input(format!(
            "[forecast] country = {c:?}: give a two-letter ISO 3166 code such as \"IT\" or \"US\", or \"none\""
        )));
    }
    let national = match &code {
        Some(c) => national_holidays(c),
        None => None,
    };
    let known_until = national
        .as_ref()
        .and_then(|_| NaiveDate::from_ymd_opt(CALENDAR_YEARS.end - 1, 12, 31));
    let mut days = national.unwrap_or_default();
    let region = match region {
        None => None,
        Some(r) => {
            let Some(c) = &code else {
                return Err(ForecastError::Input(format!(
                    "[forecast] region = {r:?} needs a country ({source})"
                )));
            };
            let r = r.to_ascii_uppercase();
            let Some(own) = regional_holidays(c, &r) else {
                let known = regions(c);
                let hint = if known.is_empty() {
                    format!("no regional calendar is known for {c}")
                } else {
                    format!("the regions of {c} are {}", known.join(", "))
                };
                return Err(ForecastError::Input(format!(
                    "[forecast] region = {r:?}: not a region of {c}; {hint}"
                )));
            };
            days.extend(own);
            Some(r)
        }
    };
    Ok(DeviceCalendar {
        country: code,
        region,
        source,
        known_until,
        holidays: Holidays::with_national(days, listed),
        listed: listed.len(),
    })
}

/// The rows of the embedded regional table, `(country, region, date, name)`.
fn regional_rows() -> Vec<(String, String, String, String)> {
    use std::io::Read as _;
    let mut text = String::new();
    flate2::read::GzDecoder::new(REGIONAL)
        .read_to_string(&mut text)
        .expect("the embedded regional table is valid gzip (a test reads it)");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.splitn(4, '\t');
            Some((
                f.next()?.to_string(),
                f.next()?.to_string(),
                f.next()?.to_string(),
                f.next().unwrap_or("").to_string(),
            ))
        })
        .collect()
}

/// The regions (subdivision codes) of the country `code` that the regional table knows.
pub fn regions(code: &str) -> Vec<String> {
    let mut out: Vec<String> = regional_rows()
        .into_iter()
        .filter(|(c, ..)| c == code)
        .map(|(_, r, ..)| r)
        .collect();
    out.dedup();
    out
}

/// The holidays `region` of the country `code` keeps besides the national ones, with their
/// names (2000-2030), or `None` when the table does not know that region.
pub fn regional_holidays(code: &str, region: &str) -> Option<Vec<(NaiveDate, String)>> {
    let rows: Vec<(String, String, String, String)> = regional_rows()
        .into_iter()
        .filter(|(c, r, ..)| c == code && r == region)
        .collect();
    if rows.is_empty() {
        return None;
    }
    Some(
        rows.into_iter()
            .filter_map(|(_, _, date, name)| Some((date.parse().ok()?, name)))
            .collect(),
    )
}

/// The national public holidays of the country `code` with their names, or `None` when no
/// calendar covers it.
pub fn national_holidays(code: &str) -> Option<Vec<(NaiveDate, String)>> {
    let country: holidays::Country = code.parse().ok()?;
    let map = holidays::Builder::new()
        .countries(&[country])
        .years(CALENDAR_YEARS)
        .build()
        .ok()?;
    let mut days: Vec<(NaiveDate, String)> = map
        .get(&country)?
        .values()
        .flat_map(|year| year.values().map(|h| (h.date, h.name.clone())))
        .collect();
    days.sort_unstable();
    Some(days)
}

/// Number of calendar features per hour.
pub const CALENDAR_FEATURES: usize = 5;

/// One day off besides the weekend.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Holiday {
    /// The local date.
    pub date: NaiveDate,
    /// A national holiday's name; `None` for a day the configuration lists.
    pub name: Option<String>,
}

/// The local days off besides weekends (public holidays), one per date, in date order.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Holidays(Vec<Holiday>);

impl Holidays {
    /// The listed days `days`, in any order.
    pub fn new(days: Vec<NaiveDate>) -> Holidays {
        Holidays::with_national(Vec::new(), &days)
    }

    /// National holidays (date, name) and listed days; a date that is both counts as listed.
    pub fn with_national(national: Vec<(NaiveDate, String)>, listed: &[NaiveDate]) -> Holidays {
        let mut all: Vec<Holiday> = listed
            .iter()
            .map(|&date| Holiday { date, name: None })
            .chain(national.into_iter().map(|(date, name)| Holiday {
                date,
                name: Some(name),
            }))
            .collect();
        // `None` sorts first: a listed day wins over a national one on the same date.
        all.sort();
        all.dedup_by(|b, a| a.date == b.date);
        Holidays(all)
    }

    /// Whether `date` is one of them.
    pub fn contains(&self, date: &NaiveDate) -> bool {
        self.0.binary_search_by(|h| h.date.cmp(date)).is_ok()
    }

    /// The dates, in order.
    pub fn days(&self) -> Vec<NaiveDate> {
        self.0.iter().map(|h| h.date).collect()
    }

    /// The holidays, in date order.
    pub fn entries(&self) -> &[Holiday] {
        &self.0
    }
}

/// Days of history [`observed`] learns from: the last year and a week.
pub(crate) const OBSERVED_DAYS: usize = 371;

/// The holidays the series of the wall-clock history `local` observes, judged on its last
/// [`OBSERVED_DAYS`] days: a listed day always; a national holiday when, the last time a
/// holiday of its name fell on a working day there, that day's 24 hours were nearer (mean
/// absolute difference) to the mean of the Sundays 1 and 2 weeks around it than to the mean of
/// the same weekday 1 and 2 weeks around it; a name not seen there, when most names seen were
/// observed; every holiday, when none was seen (a young device trusts its calendar).
///
/// National calendars list days that many utilities' demand ignores (a US federal holiday
/// that businesses work through, a simulator's calendar-free town); forecasting those as
/// Sundays costs a day's accuracy each, so each series shows which of its holidays are days off.
pub(crate) fn observed(local: &History) -> Holidays {
    let s = &local.series;
    let n = s.values.len();
    // The local history's times are its clock times written as UTC.
    let day_of = |i: usize| local_date_of(s.time(i));
    let Some(first_midnight) = (0..n.min(24)).find(|&i| s.time(i).rem_euclid(DAY) == 0) else {
        return local.holidays.clone();
    };
    let days = (n - first_midnight) / 24;
    let first_day = day_of(first_midnight);
    let learn_from = days.saturating_sub(OBSERVED_DAYS);
    let profile = |d: i64| -> Option<&[f64]> {
        let d = usize::try_from(d).ok().filter(|&d| d < days)?;
        let day = &s.values[first_midnight + 24 * d..first_midnight + 24 * (d + 1)];
        (day.iter().filter(|v| v.is_finite()).count() >= 20).then_some(day)
    };
    let index = |date: NaiveDate| (date - first_day).num_days();
    let mean_of = |ds: &[i64]| -> Option<Vec<f64>> {
        let ps: Vec<&[f64]> = ds
            .iter()
            .filter(|&&d| {
                !local
                    .holidays
                    .contains(&(first_day + chrono::Duration::days(d)))
            })
            .filter_map(|&d| profile(d))
            .collect();
        (!ps.is_empty()).then(|| {
            (0..24)
                .map(|h| {
                    let known: Vec<f64> =
                        ps.iter().map(|p| p[h]).filter(|v| v.is_finite()).collect();
                    known.iter().sum::<f64>() / known.len().max(1) as f64
                })
                .collect()
        })
    };
    let distance = |a: &[f64], b: &[f64]| -> f64 {
        let d: Vec<f64> = a
            .iter()
            .zip(b)
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(x, y)| (x - y).abs())
            .collect();
        d.iter().sum::<f64>() / d.len().max(1) as f64
    };
    // The last verdict per name, in date order.
    let mut verdicts: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
    for h in local.holidays.entries() {
        let (Some(name), d) = (h.name.as_deref(), index(h.date)) else {
            continue;
        };
        if d < learn_from as i64 || h.date.weekday() == Weekday::Sun {
            continue;
        }
        let Some(day) = profile(d) else { continue };
        let next_sunday = d + 6 - i64::from(h.date.weekday().num_days_from_monday());
        let sundays = [
            next_sunday - 14,
            next_sunday - 7,
            next_sunday,
            next_sunday + 7,
        ];
        let weekdays = [d - 14, d - 7, d + 7, d + 14];
        if let (Some(off), Some(ordinary)) = (mean_of(&sundays), mean_of(&weekdays)) {
            verdicts.insert(name, distance(day, &off) < distance(day, &ordinary));
        }
    }
    let observed = verdicts.values().filter(|v| **v).count();
    let majority = verdicts.is_empty() || 2 * observed >= verdicts.len();
    Holidays(
        local
            .holidays
            .entries()
            .iter()
            .filter(|h| match &h.name {
                None => true,
                Some(name) => verdicts.get(name.as_str()).copied().unwrap_or(majority),
            })
            .cloned()
            .collect(),
    )
}

/// The date of a local history's time (a local clock time written as UTC).
fn local_date_of(ts: Timestamp) -> NaiveDate {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// What a local day is to the seasonal lags (see [`crate::baseline::seasonal_lags`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DayKind {
    /// A day that is neither a Sunday nor a listed holiday.
    Other,
    /// A Sunday that is not a listed holiday.
    Sunday,
    /// A listed holiday.
    Holiday,
}

/// The [`DayKind`] of each interval of `history` from `from` on, extended `extra` intervals
/// past its end (index 0 is interval `from`).
pub(crate) fn day_kinds(history: &History, from: usize, extra: usize) -> Vec<DayKind> {
    (from..history.series.values.len() + extra)
        .map(|i| {
            let date = local(history.series.time(i), history.timezone).date();
            if history.holidays.contains(&date) {
                DayKind::Holiday
            } else if date.weekday() == Weekday::Sun {
                DayKind::Sunday
            } else {
                DayKind::Other
            }
        })
        .collect()
}

/// The local date and time of `ts` in `tz`.
fn local(ts: Timestamp, tz: Tz) -> chrono::NaiveDateTime {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.with_timezone(&tz).naive_local())
        .unwrap_or_default()
}

/// `[sin hour, cos hour, sin weekday, cos weekday, day off]` of the hour starting at `ts`.
pub fn features(ts: Timestamp, tz: Tz, holidays: &Holidays) -> [f32; CALENDAR_FEATURES] {
    let local = local(ts, tz);
    let hour = f64::from(local.hour()) + f64::from(local.minute()) / 60.0;
    let day = f64::from(local.weekday().num_days_from_monday());
    let tau = std::f64::consts::TAU;
    let off =
        matches!(local.weekday(), Weekday::Sat | Weekday::Sun) || holidays.contains(&local.date());
    [
        (tau * hour / 24.0).sin() as f32,
        (tau * hour / 24.0).cos() as f32,
        (tau * day / 7.0).sin() as f32,
        (tau * day / 7.0).cos() as f32,
        f32::from(u8::from(off)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// Easter Sunday by the anonymous Gregorian algorithm (Meeus/Jones/Butcher).
    fn easter(y: i32) -> NaiveDate {
        let (a, b, c) = (y % 19, y / 100, y % 100);
        let (dd, e) = (b / 4, b % 4);
        let g = (8 * b + 13) / 25;
        let h = (19 * a + b - dd - g + 15) % 30;
        let (i, k) = (c / 4, c % 4);
        let l = (32 + 2 * e + 2 * i - h - k) % 7;
        let m = (a + 11 * h + 19 * l) / 433;
        let month = (h + l - 7 * m + 90) / 25;
        let day = (h + l - 7 * m + 33 * month + 19) % 32;
        d(y, month as u32, day as u32)
    }

    #[test]
    fn italy_and_the_united_states_2021_to_2030() {
        let it = device_calendar(chrono_tz::Europe::Rome, None, None, &[]).unwrap();
        assert_eq!(it.country.as_deref(), Some("IT"));
        assert_eq!(it.known_until, Some(d(2030, 12, 31)));
        let us = device_calendar(chrono_tz::America::New_York, None, None, &[]).unwrap();
        assert_eq!(us.country.as_deref(), Some("US"));
        for y in 2021..=2030 {
            let easter_monday = easter(y) + chrono::Duration::days(1);
            assert!(it.holidays.contains(&easter_monday), "Easter Monday {y}");
            for (m, day) in [
                (1, 1),
                (1, 6),
                (4, 25),
                (5, 1),
                (6, 2),
                (8, 15),
                (11, 1),
                (12, 8),
                (12, 25),
                (12, 26),
            ] {
                assert!(it.holidays.contains(&d(y, m, day)), "Italy {y}-{m}-{day}");
            }
            assert!(
                !it.holidays
                    .days()
                    .contains(&(easter_monday + chrono::Duration::days(1)))
            );
            // Thanksgiving: the fourth Thursday of November.
            let first_thursday = (1..=7)
                .map(|day| d(y, 11, day))
                .find(|x| x.weekday() == Weekday::Thu)
                .unwrap();
            assert!(
                us.holidays
                    .days()
                    .contains(&(first_thursday + chrono::Duration::days(21))),
                "Thanksgiving {y}"
            );
            assert!(
                us.holidays.contains(&d(y, 7, 4))
                    || us
                        .holidays
                        .days()
                        .iter()
                        .any(|x| x.year() == y && x.month() == 7 && (3..=5).contains(&x.day()))
            );
        }
        // The shared DMAs' hand-written list (docs/dma-inflow.toml) is contained.
        for day in ["2021-04-05", "2022-04-18", "2022-06-02", "2021-11-01"] {
            assert!(it.holidays.contains(&day.parse().unwrap()), "{day}");
        }
        assert!(
            it.describe()
                .contains("IT (from the time zone Europe/Rome), known until 2030-12-31")
        );
    }

    #[test]
    fn a_series_shows_which_national_holidays_it_keeps_as_days_off() {
        // Ten weeks from Monday 1970-01-05 (UTC, as a wall-clock history is): working days
        // peak at 07:00, Sundays are flat and low.
        let start = 4 * 86_400;
        let national = |name: &str, day: i64| {
            (
                d(1970, 1, 5) + chrono::Duration::days(day),
                name.to_string(),
            )
        };
        // "Closed" falls on Wednesday day 23 and the town stays home; "Open" on Thursday day 38
        // and it works as usual; both come back after the history, as does the unseen "New".
        let holidays = Holidays::with_national(
            vec![
                national("Closed", 23),
                national("Open", 38),
                national("Closed", 72),
                national("Open", 73),
                national("New", 74),
            ],
            &[d(1970, 3, 17)],
        );
        let day_off = [23usize];
        let values = (0..70 * 24)
            .map(|i| {
                let (day, hour) = (i / 24, i % 24);
                if day % 7 == 6 || day_off.contains(&day) {
                    20.0
                } else if hour == 7 {
                    90.0
                } else {
                    30.0
                }
            })
            .collect();
        let mut h = History::hourly(start, values, chrono_tz::UTC);
        h.holidays = holidays;
        let kept = observed(&h);
        let names: Vec<(NaiveDate, Option<&str>)> = kept
            .entries()
            .iter()
            .map(|x| (x.date, x.name.as_deref()))
            .collect();
        assert_eq!(
            names,
            vec![
                (d(1970, 1, 28), Some("Closed")),
                (d(1970, 3, 17), None),
                (d(1970, 3, 18), Some("Closed")),
                // One name of two was observed: an unseen name is kept.
                (d(1970, 3, 20), Some("New")),
            ]
        );
        // Without any holiday in the history, the calendar is trusted whole.
        let young = h.tail(10 * 24);
        assert_eq!(observed(&young), young.holidays);
    }

    #[test]
    fn the_configuration_overrides_and_adds() {
        let listed = [d(2022, 12, 7)];
        let c = device_calendar(chrono_tz::Asia::Seoul, Some("it"), None, &listed).unwrap();
        assert_eq!(c.country.as_deref(), Some("IT"));
        assert!(c.holidays.contains(&d(2022, 12, 7)) && c.holidays.contains(&d(2022, 12, 8)));
        assert_eq!(c.listed, 1);
        let none = device_calendar(chrono_tz::Europe::Rome, Some("none"), None, &listed).unwrap();
        assert_eq!((none.country, none.holidays.days().len()), (None, 1));
        let utc = device_calendar(chrono_tz::UTC, None, None, &[]).unwrap();
        assert!(
            utc.holidays.days().is_empty() && utc.describe().contains("names no country"),
            "{}",
            utc.describe()
        );
        // Korea, the default zone's country, with its lunar holidays (Chuseok 2022: 9-11 Sep).
        let kr = device_calendar(chrono_tz::Asia::Seoul, None, None, &[]).unwrap();
        assert!(kr.holidays.contains(&d(2022, 9, 10)));
        assert!(device_calendar(chrono_tz::UTC, Some("Italy"), None, &[]).is_err());
        let unknown = device_calendar(chrono_tz::UTC, Some("XX"), None, &[]).unwrap();
        assert!(
            unknown.known_until.is_none()
                && unknown.describe().contains("no national calendar for XX")
        );
        assert_eq!(country_of_zone("US/Eastern"), Some("US"));
    }

    #[test]
    fn a_region_adds_its_own_holidays() {
        // Rome keeps Saints Peter and Paul (29 June) besides Italy's national holidays.
        let rome = device_calendar(chrono_tz::Europe::Rome, None, Some("rm"), &[]).unwrap();
        assert_eq!(rome.region.as_deref(), Some("RM"));
        assert!(rome.describe().contains("region RM"), "{}", rome.describe());
        for year in 2021..=2030 {
            assert!(rome.holidays.contains(&d(year, 6, 29)), "{year}");
            assert!(
                rome.holidays.contains(&d(year, 6, 2)),
                "{year}: national too"
            );
        }
        let italy = device_calendar(chrono_tz::Europe::Rome, None, None, &[]).unwrap();
        assert!(!italy.holidays.contains(&d(2022, 6, 29)));
        // Bavaria: Epiphany, Corpus Christi (Easter + 60 days), All Saints.
        let bavaria = device_calendar(chrono_tz::Europe::Berlin, None, Some("BY"), &[]).unwrap();
        for year in 2021..=2030 {
            assert!(bavaria.holidays.contains(&d(year, 1, 6)), "{year}");
            let corpus_christi = easter(year) + chrono::Days::new(60);
            assert!(bavaria.holidays.contains(&corpus_christi), "{year}");
        }
        // California: Cesar Chavez Day, 31 March (or the Monday after when on a Sunday).
        let ca = device_calendar(chrono_tz::America::Los_Angeles, None, Some("CA"), &[]).unwrap();
        assert!(ca.holidays.contains(&d(2022, 3, 31)));
        // A region the country does not have, or a region without a country: errors that say
        // what is known.
        let err = device_calendar(chrono_tz::Europe::Rome, None, Some("XX"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not a region of IT") && err.contains("RM"),
            "{err}"
        );
        assert!(device_calendar(chrono_tz::UTC, None, Some("RM"), &[]).is_err());
        assert!(regions("IT").len() > 100 && regions("ZZ").is_empty());
    }

    #[test]
    fn local_hour_weekday_and_days_off() {
        let seoul = chrono_tz::Asia::Seoul;
        // 2024-07-08T15:00Z is Tuesday 00:00 in Seoul.
        let f = features(1_720_450_800, seoul, &Holidays::default());
        assert!(
            (f[0] - 0.0).abs() < 1e-6 && (f[1] - 1.0).abs() < 1e-6,
            "midnight: {f:?}"
        );
        assert_eq!(f[4], 0.0);
        let sat = features(1_720_450_800 + 4 * 86_400, seoul, &Holidays::default());
        assert_eq!(sat[4], 1.0);
        let hol = Holidays::new(vec![NaiveDate::from_ymd_opt(2024, 7, 9).unwrap()]);
        assert_eq!(features(1_720_450_800, seoul, &hol)[4], 1.0);
    }
}
