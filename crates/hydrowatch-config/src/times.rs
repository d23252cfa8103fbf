//! Times of day and of the week in the configuration: `HH:MM`, `Sun 03:00`, and the forecast's
//! schedule (`HH:MM` daily or `*:MM` hourly), each parsed with an error that says what is allowed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A local wall-clock time of day, written `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    /// 0-23.
    pub hour: u8,
    /// 0-59.
    pub minute: u8,
}

/// A weekday and a time of day, written like `sun 02:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyTime {
    /// The day of the week.
    pub weekday: chrono::Weekday,
    /// The local time on that day.
    pub time: TimeOfDay,
}

impl FromStr for TimeOfDay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("{s:?} is not a time of day: write HH:MM, 00:00 to 23:59");
        let (h, m) = s.split_once(':').ok_or_else(err)?;
        let (hour, minute): (u8, u8) =
            (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
        if hour > 23 || minute > 59 || m.len() != 2 {
            return Err(err());
        }
        Ok(TimeOfDay { hour, minute })
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

impl FromStr for WeeklyTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err =
            || format!("{s:?} is not a weekly time: write a weekday and HH:MM, e.g. \"sun 02:00\"");
        let (day, time) = s.trim().split_once(' ').ok_or_else(err)?;
        let weekday = day.parse::<chrono::Weekday>().map_err(|_| err())?;
        Ok(WeeklyTime {
            weekday,
            time: time.trim().parse()?,
        })
    }
}

/// When forecasts are made: once a day (the prototype) or every hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForecastAt {
    /// Daily at this local time (`HH:MM`).
    Daily(TimeOfDay),
    /// Every hour at this minute (`*:MM`).
    Hourly(u8),
}

impl FromStr for ForecastAt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || {
            format!(
                "{s:?} is not a forecast time: write HH:MM for daily (e.g. \"00:30\") or *:MM for every hour (e.g. \"*:05\")"
            )
        };
        match s.strip_prefix("*:") {
            Some(m) => match m.parse::<u8>() {
                Ok(minute) if minute < 60 && m.len() == 2 => Ok(ForecastAt::Hourly(minute)),
                _ => Err(err()),
            },
            None => s.parse().map(ForecastAt::Daily).map_err(|_| err()),
        }
    }
}

impl fmt::Display for ForecastAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForecastAt::Daily(t) => write!(f, "{t}"),
            ForecastAt::Hourly(m) => write!(f, "*:{m:02}"),
        }
    }
}

impl<'de> Deserialize<'de> for ForecastAt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for WeeklyTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}
