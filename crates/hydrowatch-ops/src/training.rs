//! Training as plain data in and out, so that it can run where its memory is given back: an
//! [`Order`] (what to train, on which hourly history, compared with which model in use) and its
//! [`Outcome`] are serialisable, and [`carry_out`] does the work in whatever process holds them:
//! `hydrowatch forecast` and `train` in their own process, the daemon in a child process that
//! exits when done (`hydrowatch train-worker`, run by hydrowatch-edge).
//!
//! Invariants: the work writes nothing but the folder `order.out` (never the database, never the
//! folder of the model in use); `out` holds a complete model when the work succeeds with
//! `keep`, and nothing is promised about it otherwise (the caller removes it). The caller alone
//! puts a kept model in place, by renaming ([`crate::models::install`]).

use std::path::PathBuf;

use chrono_tz::Tz;
use hydrowatch_core::Timestamp;
use hydrowatch_forecast::backtest::evaluate;
use hydrowatch_forecast::{Fitted, ForecastError, Forecaster, History, Holidays};
use serde::{Deserialize, Serialize};

use crate::error::JobError;
use crate::models::{saved_model, write_model};

/// Fits a forecaster (the command line shows a progress bar; the daemon logs).
pub type Trainer<'a> = &'a dyn Fn(&Forecaster, &History) -> Result<Fitted, ForecastError>;

/// An hourly history as plain data (missing hours are `null`, not `NaN`, which JSON lacks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryData {
    /// Start of the first hour.
    pub start: Timestamp,
    /// Hourly means; `None` where the hour had no reading.
    pub values: Vec<Option<f64>>,
    /// The IANA zone of the calendar.
    pub timezone: String,
    /// Days off besides weekends.
    pub holidays: Holidays,
}

impl From<&History> for HistoryData {
    fn from(h: &History) -> HistoryData {
        HistoryData {
            start: h.series.start,
            values: h
                .series
                .values
                .iter()
                .map(|v| v.is_finite().then_some(*v))
                .collect(),
            timezone: h.timezone.name().to_string(),
            holidays: h.holidays.clone(),
        }
    }
}

impl HistoryData {
    /// The history these data describe.
    pub fn history(&self) -> Result<History, JobError> {
        let tz: Tz = self.timezone.parse().map_err(|_| {
            JobError::Worker(format!(
                "unknown time zone {:?} in the order",
                self.timezone
            ))
        })?;
        let values = self.values.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        let mut history = History::hourly(self.start, values, tz);
        history.holidays = self.holidays.clone();
        Ok(history)
    }
}

/// A model to train.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    /// The series, for the logs.
    pub series: String,
    /// The forecaster's name ([`Forecaster::from_name`]).
    pub forecaster: String,
    /// The hourly history.
    pub history: HistoryData,
    /// Train on the hours before this one only (the rest compares the models); `None`: on all.
    pub train_until: Option<usize>,
    /// Compare the new model with the one in use before keeping it; `None`: keep it.
    pub compare: Option<Comparison>,
    /// The folder the new model is written to when it is kept.
    pub out: PathBuf,
}

/// How a new model is compared with the one in use: both forecast from each origin, and the
/// new one is kept when its mean PI1 + PI3 is lower (or the one in use cannot be read).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// The folder of the model in use.
    pub current: PathBuf,
    /// The forecast origins (hour indices of the history).
    pub origins: Vec<usize>,
}

/// What the work found.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The score of the model in use (none when there is none, it cannot be read or forecast).
    pub current_score: Option<f64>,
    /// The score of the new model (none without a comparison, or when it cannot forecast).
    pub candidate_score: Option<f64>,
    /// Whether the new model was written to `out`, to replace the one in use.
    pub keep: bool,
}

/// A worker's answer: the outcome, or why there is none (a history too short is told apart:
/// for a young device that is a normal state, not a failure).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Answer {
    /// The work was done.
    Done(Outcome),
    /// The history is too short to train on.
    TooShort {
        /// What needed it.
        what: String,
        /// Hours needed.
        needed: usize,
        /// Usable hours available.
        available: usize,
    },
    /// Anything else.
    Failed(String),
}

impl From<Result<Outcome, JobError>> for Answer {
    fn from(result: Result<Outcome, JobError>) -> Answer {
        match result {
            Ok(outcome) => Answer::Done(outcome),
            Err(JobError::Forecast(ForecastError::TooShort {
                what,
                needed,
                available,
            })) => Answer::TooShort {
                what,
                needed,
                available,
            },
            Err(e) => Answer::Failed(e.to_string()),
        }
    }
}

impl From<Answer> for Result<Outcome, JobError> {
    fn from(answer: Answer) -> Result<Outcome, JobError> {
        match answer {
            Answer::Done(outcome) => Ok(outcome),
            Answer::TooShort {
                what,
                needed,
                available,
            } => Err(ForecastError::TooShort {
                what,
                needed,
                available,
            }
            .into()),
            Answer::Failed(why) => Err(JobError::Worker(why)),
        }
    }
}

/// Where an [`Order`] is carried out: `|order| carry_out(order, trainer)` in this process, or
/// a child process (the daemon).
pub type Training<'a> = &'a dyn Fn(&Order) -> Result<Outcome, JobError>;

/// Trains the order's model with `train`, compares it with the model in use when asked, and
/// writes it to `order.out` when it is to be kept.
pub fn carry_out(order: &Order, train: Trainer<'_>) -> Result<Outcome, JobError> {
    let forecaster =
        Forecaster::from_name(&order.forecaster).ok_or_else(|| JobError::UnknownForecaster {
            series: order.series.clone(),
            name: order.forecaster.clone(),
        })?;
    let history = order.history.history()?;
    let candidate = match order.train_until {
        Some(end) => train(
            &forecaster,
            &history.until(end.min(history.series.values.len())),
        )?,
        None => train(&forecaster, &history)?,
    };
    let outcome = match &order.compare {
        None => Outcome {
            current_score: None,
            candidate_score: None,
            keep: true,
        },
        Some(c) => {
            let score = |m: &Fitted| {
                evaluate(m, &history, &c.origins)
                    .ok()
                    .map(|r| r.scores.selection())
                    .filter(|s| s.is_finite())
            };
            let current = saved_model(&c.current, &forecaster);
            let current_score = current.as_ref().and_then(score);
            let candidate_score = score(&candidate);
            let keep = match (candidate_score, current_score) {
                (Some(new), Some(old)) => new < old,
                (Some(_), None) => true,
                (None, _) => current.is_none(),
            };
            Outcome {
                current_score,
                candidate_score,
                keep,
            }
        }
    };
    if outcome.keep {
        write_model(&candidate, &history, &order.out)?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_survives_the_trip_through_json_gaps_and_holidays_included() {
        let mut h = History::hourly(
            1_700_000_000,
            vec![1.0, f64::NAN, 3.5],
            chrono_tz::Asia::Kathmandu,
        );
        h.holidays = Holidays::new(vec![chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()]);
        let json = serde_json::to_string(&HistoryData::from(&h)).unwrap();
        assert!(json.contains("[1.0,null,3.5]"), "{json}");
        let back = serde_json::from_str::<HistoryData>(&json)
            .unwrap()
            .history()
            .unwrap();
        assert_eq!(back.series.start, h.series.start);
        assert_eq!(back.series.values[0], 1.0);
        assert!(back.series.values[1].is_nan());
        assert_eq!((back.timezone, &back.holidays), (h.timezone, &h.holidays));
        let mut bad = HistoryData::from(&h);
        bad.timezone = "Mars/Olympus".into();
        assert!(matches!(bad.history(), Err(JobError::Worker(_))));
    }

    #[test]
    fn a_short_history_is_told_apart_in_the_answer_and_comes_back_as_the_same_error() {
        let short: Result<Outcome, JobError> = Err(ForecastError::TooShort {
            what: "training".into(),
            needed: 400,
            available: 20,
        }
        .into());
        let answer: Answer =
            serde_json::from_str(&serde_json::to_string(&Answer::from(short)).unwrap()).unwrap();
        let back: Result<Outcome, JobError> = answer.into();
        assert!(matches!(
            back,
            Err(JobError::Forecast(ForecastError::TooShort {
                needed: 400,
                available: 20,
                ..
            }))
        ));
        let failed: Result<Outcome, JobError> =
            Answer::from(Err::<Outcome, _>(JobError::Worker("boom".into()))).into();
        assert_eq!(failed.unwrap_err().to_string(), "boom");
    }
}
