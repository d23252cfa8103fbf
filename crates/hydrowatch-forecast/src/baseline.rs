//! The baselines every model must beat: seasonal naive (the same hour last week), the seasonal
//! mean (the same hour averaged over the last 4 weeks), the seasonal blend (the neural models'
//! starting point) and MSTL + ETS (augurs: daily and weekly seasonality by MSTL, the trend by
//! automatic ETS).
//!
//! Every baseline works on the local wall clock ([`WallClock`]): "the same hour last week" is the
//! same local clock hour 7 local days before, whatever daylight saving did in between. Each is
//! "fitted" by estimating its band from forecasts it would have made at the local midnights of
//! the last weeks of the history; each looks only at the history it is given.

use crate::calendar::{DayKind, day_kinds};
use crate::clock::WallClock;
use crate::{
    Band, Fit, Forecast, ForecastError, GapRules, HORIZON, History, Predict, WEEK, fill_gaps,
};
use hydrowatch_core::time::DAY;

/// Weeks at the end of a history whose daily origins estimate a baseline's band.
const BAND_WEEKS: usize = 4;
/// Hours of history a baseline's forecast reads: the longest MSTL window (16 weeks) and a
/// margin; the blend's lags (5 weeks) and the filling of their gaps (8 weeks more) fit inside.
pub(crate) const PREDICT_TAIL: usize = 20 * WEEK;

/// Filled values of a history, with the hours still unknown (long gaps) replaced by the same
/// hour of a neighbouring week: what models that cannot skip gaps need. On a wall-clock history
/// (as every forecaster sees it) a week is 168 local hours.
pub fn seasonal_fill(history: &History) -> Vec<f64> {
    let filled = fill_gaps(&history.series.values, GapRules::default());
    let mut v = filled.values;
    for i in 0..v.len() {
        if v[i].is_nan() {
            let back = (1..=8)
                .filter_map(|k| i.checked_sub(k * WEEK))
                .map(|j| v[j])
                .find(|x| x.is_finite());
            let fwd = (1..=8)
                .map(|k| i + k * WEEK)
                .filter(|&j| j < v.len())
                .map(|j| v[j])
                .find(|x| x.is_finite());
            v[i] = back.or(fwd).unwrap_or(f64::NAN);
        }
    }
    // Whatever is still unknown (a series shorter than a week with a gap) takes the mean.
    let known: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let mean = known.iter().sum::<f64>() / known.len().max(1) as f64;
    v.iter_mut().filter(|x| x.is_nan()).for_each(|x| *x = mean);
    v
}

/// Residual rows (actual - forecast) of `forecast_fn` at the local midnights of the last
/// `weeks` weeks of the wall-clock history `local` whose horizon ends inside it.
pub(crate) fn backtest_residuals(
    local: &History,
    weeks: usize,
    min_history: usize,
    forecast_fn: impl Fn(&History) -> Result<Vec<f64>, ForecastError>,
) -> Result<Vec<Vec<f64>>, ForecastError> {
    let n = local.series.values.len();
    let mut rows = Vec::new();
    let mut origin = n.saturating_sub(weeks * WEEK + HORIZON).max(min_history);
    // The local history's times are its clock times written as UTC: midnight is a whole day.
    while local.series.time(origin).rem_euclid(DAY) != 0 && origin < n {
        origin += 1;
    }
    while origin + HORIZON <= n {
        let fc = forecast_fn(&local.until(origin))?;
        let actual = &local.series.values[origin..origin + HORIZON];
        rows.push(actual.iter().zip(&fc).map(|(a, f)| a - f).collect());
        origin += 24;
    }
    Ok(rows)
}

/// A baseline's band: the residuals of `points` over the last [`BAND_WEEKS`] weeks of `history`
/// on its wall clock.
fn fit_band(
    history: &History,
    min_history: usize,
    points: impl Fn(&History) -> Result<Vec<f64>, ForecastError>,
) -> Result<Band, ForecastError> {
    let tail = BAND_WEEKS * WEEK + HORIZON + PREDICT_TAIL;
    let local = WallClock::of(history, Some(tail))?.local;
    let rows = backtest_residuals(&local, BAND_WEEKS, min_history, points)?;
    Ok(Band::from_residuals(&rows, HORIZON))
}

/// A baseline's forecast after `history`: `points` on its wall clock, back in real hours.
fn forecast(
    history: &History,
    points: impl Fn(&History) -> Result<Vec<f64>, ForecastError>,
    band: &Band,
    model: String,
) -> Result<Forecast, ForecastError> {
    let clock = WallClock::of(history, Some(PREDICT_TAIL))?;
    Ok(clock.forecast(&points(&clock.local)?, band, model))
}

/// Seasonal naive: each hour as the same hour one week earlier (or, where that is unknown,
/// the latest earlier week that is known).
#[derive(Debug, Clone, Copy, Default)]
pub struct SeasonalNaive;

/// A fitted [`SeasonalNaive`].
#[derive(Debug, Clone)]
pub struct FittedSeasonalNaive {
    band: Band,
}

fn seasonal_naive_points(history: &History) -> Result<Vec<f64>, ForecastError> {
    let v = seasonal_fill(history);
    if v.len() < WEEK {
        return Err(ForecastError::TooShort {
            what: "seasonal naive".into(),
            needed: WEEK,
            available: v.len(),
        });
    }
    Ok((0..HORIZON).map(|h| v[v.len() - WEEK + h % WEEK]).collect())
}

impl Fit for SeasonalNaive {
    type Fitted = FittedSeasonalNaive;
    fn fit(&self, history: &History) -> Result<FittedSeasonalNaive, ForecastError> {
        Ok(FittedSeasonalNaive {
            band: fit_band(history, WEEK, seasonal_naive_points)?,
        })
    }
}

impl Predict for FittedSeasonalNaive {
    fn predict(&self, history: &History) -> Result<Forecast, ForecastError> {
        forecast(history, seasonal_naive_points, &self.band, self.name())
    }
    fn name(&self) -> String {
        "seasonal-naive".into()
    }
}

/// Seasonal mean: each hour as the mean of the same hour over the last `weeks` weeks (the
/// known ones).
#[derive(Debug, Clone, Copy)]
pub struct SeasonalMean {
    /// Weeks averaged.
    pub weeks: usize,
}

impl Default for SeasonalMean {
    /// The last 4 weeks.
    fn default() -> Self {
        SeasonalMean { weeks: 4 }
    }
}

/// A fitted [`SeasonalMean`].
#[derive(Debug, Clone)]
pub struct FittedSeasonalMean {
    weeks: usize,
    band: Band,
}

fn seasonal_mean_points(history: &History, weeks: usize) -> Result<Vec<f64>, ForecastError> {
    let v = seasonal_fill(history);
    let n = v.len();
    if n < WEEK {
        return Err(ForecastError::TooShort {
            what: "seasonal mean".into(),
            needed: WEEK,
            available: n,
        });
    }
    Ok((0..HORIZON)
        .map(|h| {
            let same_hour: Vec<f64> = (1..=weeks.max(1))
                .filter_map(|k| (n + h % WEEK).checked_sub(k * WEEK))
                .map(|j| v[j])
                .collect();
            same_hour.iter().sum::<f64>() / same_hour.len() as f64
        })
        .collect())
}

impl Fit for SeasonalMean {
    type Fitted = FittedSeasonalMean;
    fn fit(&self, history: &History) -> Result<FittedSeasonalMean, ForecastError> {
        Ok(FittedSeasonalMean {
            weeks: self.weeks,
            band: fit_band(history, WEEK, |h| seasonal_mean_points(h, self.weeks))?,
        })
    }
}

impl Predict for FittedSeasonalMean {
    fn predict(&self, history: &History) -> Result<Forecast, ForecastError> {
        forecast(
            history,
            |h| seasonal_mean_points(h, self.weeks),
            &self.band,
            self.name(),
        )
    }
    fn name(&self) -> String {
        format!("seasonal-mean-{}w", self.weeks)
    }
}

/// Weeks of the seasonal blend: the same hour of the week 1-5 weeks before the target.
pub(crate) const BLEND_WEEKS: usize = 5;
/// Days of the seasonal blend: the same clock hour on each of the 7 days before the origin.
pub(crate) const BLEND_DAYS: usize = 7;

/// The seasonal lags of the hour `ahead` hours after origin `o` of `v`, weeks first (1..=5),
/// then days (1..=7). All lie before `o` and no further back than 5 weeks before the target.
/// The neural models read the same lags in the same order.
///
/// Listed holidays (`days`, aligned with `v` and reaching the target) are days off in the middle
/// of a week: a holiday target takes as its weekly lags the same clock hour of the 5 most recent
/// days off (Sundays and holidays) before `o`; any other target replaces a weekly lag that fell
/// on a holiday by the nearest of its other weekly lags (older first) that did not. Without
/// holidays the lags are the plain ones. Over the 10 DMAs with Italy's holidays the seasonal
/// blend gains 2.2 points on PI1 and 1.5 on PI3 (docs/FORECASTING.md).
pub(crate) fn seasonal_lags(
    v: &[f64],
    days: &[DayKind],
    o: usize,
    ahead: usize,
) -> [f64; BLEND_WEEKS + BLEND_DAYS] {
    let mut lags = [0.0; BLEND_WEEKS + BLEND_DAYS];
    let t = o + ahead;
    let same_hour_before_origin = |j: usize| o + ahead % 24 - 24 * j;
    if days[t] == DayKind::Holiday {
        // 5 weeks of days hold 5 Sundays, so 5 days off are always found.
        let days_off = (1..=BLEND_WEEKS * 7)
            .map(same_hour_before_origin)
            .filter(|&i| days[i] != DayKind::Other);
        for (lag, i) in lags.iter_mut().zip(days_off) {
            *lag = v[i];
        }
    } else {
        let week = |k: usize| t - k * WEEK;
        let usable = |k: &usize| days[week(*k)] != DayKind::Holiday;
        for k in 1..=BLEND_WEEKS {
            let source = Some(k)
                .filter(usable)
                .or_else(|| (k + 1..=BLEND_WEEKS).chain((1..k).rev()).find(usable))
                .unwrap_or(k);
            lags[k - 1] = v[week(source)];
        }
    }
    for j in 1..=BLEND_DAYS {
        lags[BLEND_WEEKS + j - 1] = v[same_hour_before_origin(j)];
    }
    lags
}

/// Weights of [`seasonal_lags`] in the seasonal blend: 80% on the weeks, recent weeks first
/// (5:4:3:2:1), 20% evenly on the days. Over the 10 DMAs this beats the plain 4-week mean by
/// 4.7 points on PI1 and 3 on PI3 (docs/FORECASTING.md); the neural models start from it.
pub(crate) fn blend_weights() -> [f64; BLEND_WEEKS + BLEND_DAYS] {
    let total: usize = (1..=BLEND_WEEKS).sum();
    let mut w = [0.2 / BLEND_DAYS as f64; BLEND_WEEKS + BLEND_DAYS];
    for k in 1..=BLEND_WEEKS {
        w[k - 1] = 0.8 * (BLEND_WEEKS + 1 - k) as f64 / total as f64;
    }
    w
}

/// Seasonal blend: each hour as the [`blend_weights`] mix of its [`seasonal_lags`], on the
/// history with gaps filled from neighbouring weeks. The neural models' starting point, and what
/// the device sends when a model cannot read its recent input.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeasonalBlend;

impl SeasonalBlend {
    /// Its name in tables, files and the combination's members.
    pub const NAME: &str = "seasonal-blend";
}

/// A fitted [`SeasonalBlend`].
#[derive(Debug, Clone)]
pub struct FittedSeasonalBlend {
    band: Band,
}

pub(crate) fn seasonal_blend_points(history: &History) -> Result<Vec<f64>, ForecastError> {
    let v = seasonal_fill(history);
    let n = v.len();
    if n < BLEND_WEEKS * WEEK {
        return Err(ForecastError::TooShort {
            what: "seasonal blend".into(),
            needed: BLEND_WEEKS * WEEK,
            available: n,
        });
    }
    let w = blend_weights();
    // The lags reach 5 weeks back from the targets: only those hours' days are needed.
    let from = n - BLEND_WEEKS * WEEK;
    let days = day_kinds(history, from, HORIZON);
    Ok((0..HORIZON)
        .map(|h| {
            seasonal_lags(&v[from..], &days, n - from, h)
                .iter()
                .zip(&w)
                .map(|(x, w)| x * w)
                .sum()
        })
        .collect())
}

impl Fit for SeasonalBlend {
    type Fitted = FittedSeasonalBlend;
    fn fit(&self, history: &History) -> Result<FittedSeasonalBlend, ForecastError> {
        Ok(FittedSeasonalBlend {
            band: fit_band(history, BLEND_WEEKS * WEEK, seasonal_blend_points)?,
        })
    }
}

impl Predict for FittedSeasonalBlend {
    fn predict(&self, history: &History) -> Result<Forecast, ForecastError> {
        forecast(history, seasonal_blend_points, &self.band, self.name())
    }
    fn name(&self) -> String {
        "seasonal-blend".into()
    }
}

/// MSTL with daily and weekly seasonality and an automatic ETS trend (augurs), refitted on the
/// last `weeks` weeks of history at every forecast.
#[derive(Debug, Clone, Copy)]
pub struct MstlEts {
    /// Weeks of history each forecast is fitted on.
    pub weeks: usize,
}

impl MstlEts {
    /// Its name in tables, files and the combination's members.
    pub const NAME: &str = "mstl-ets";
}

impl Default for MstlEts {
    /// Fitted on the last 16 weeks: the window of the statsforecast peer (docs/FORECASTING.md).
    fn default() -> Self {
        MstlEts { weeks: 16 }
    }
}

/// A fitted [`MstlEts`].
#[derive(Debug, Clone)]
pub struct FittedMstlEts {
    weeks: usize,
    band: Band,
}

pub(crate) fn mstl_points(history: &History, weeks: usize) -> Result<Vec<f64>, ForecastError> {
    let v = seasonal_fill(history);
    if v.len() < 2 * WEEK {
        return Err(ForecastError::TooShort {
            what: "MSTL+ETS".into(),
            needed: 2 * WEEK,
            available: v.len(),
        });
    }
    let y = &v[v.len().saturating_sub(weeks * WEEK)..];
    let trend = augurs::ets::AutoETS::non_seasonal().into_trend_model();
    let model = augurs::mstl::MSTLModel::new(vec![24, WEEK], trend);
    let fitted = augurs::Fit::fit(&model, y).map_err(|e| ForecastError::Baseline(e.to_string()))?;
    let fc = augurs::Predict::predict(&fitted, HORIZON, None)
        .map_err(|e| ForecastError::Baseline(e.to_string()))?;
    Ok(fc.point)
}

impl Fit for MstlEts {
    type Fitted = FittedMstlEts;
    fn fit(&self, history: &History) -> Result<FittedMstlEts, ForecastError> {
        let weeks = self.weeks.max(2);
        Ok(FittedMstlEts {
            weeks,
            band: fit_band(history, 2 * WEEK, |h| mstl_points(h, weeks))?,
        })
    }
}

impl Predict for FittedMstlEts {
    fn predict(&self, history: &History) -> Result<Forecast, ForecastError> {
        forecast(
            history,
            |h| mstl_points(h, self.weeks),
            &self.band,
            self.name(),
        )
    }
    fn name(&self) -> String {
        "mstl-ets".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Holidays;

    /// A weekly pattern with a daily cycle, noise-free.
    fn weekly(weeks: usize) -> History {
        let values = (0..weeks * WEEK)
            .map(|i| {
                50.0 + 20.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin()
                    + (i % WEEK / 24) as f64
            })
            .collect();
        History::hourly(0, values, chrono_tz::UTC)
    }

    /// 8 weeks from Thursday 1970-01-01 (UTC): working days follow one daily shape, days off
    /// (Sundays, and `holidays` given as days since the start) a lower, flatter one.
    fn with_days_off(holidays: &[i64]) -> History {
        let day_off = |d: usize| d % 7 == 3 || holidays.contains(&(d as i64));
        let values = (0..8 * WEEK)
            .map(|i| {
                let shape = ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin();
                if day_off(i / 24) {
                    30.0 + 5.0 * shape
                } else {
                    50.0 + 20.0 * shape
                }
            })
            .collect();
        History::hourly(0, values, chrono_tz::UTC)
    }

    fn date(days: i64) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days)
    }

    #[test]
    fn listed_holidays_are_forecast_as_days_off_and_do_not_leak_into_later_weeks() {
        // Day 41 (a Wednesday, 3 weeks before the Wednesday forecast on day 62) was a holiday,
        // and day 57 (the Friday after the origin, day 56) will be one.
        let mut h = with_days_off(&[41]);
        let plain = seasonal_blend_points(&h).unwrap();
        h.holidays = Holidays::new(vec![date(41), date(57)]);
        let aware = seasonal_blend_points(&h).unwrap();
        let clean = seasonal_blend_points(&with_days_off(&[])).unwrap();
        let v = &h.series.values;
        for hour in 0..24 {
            // The same clock hour on the 7 days before the origin: 6 working days, 1 Sunday.
            let recent = (1..=7).map(|j| v[56 * 24 + hour - 24 * j]).sum::<f64>() / 7.0;
            let sunday = v[52 * 24 + hour];
            let holiday = 24 + hour;
            assert!((aware[holiday] - (0.8 * sunday + 0.2 * recent)).abs() < 1e-9);
            assert!(plain[holiday] - aware[holiday] > 3.0, "{hour}: {plain:?}");
            let wednesday = 6 * 24 + hour;
            assert!((aware[wednesday] - clean[wednesday]).abs() < 1e-9);
        }
        // Without the list the holiday 3 weeks back pulls the Wednesday toward a day off.
        let leak: f64 = (0..24)
            .map(|k| (plain[6 * 24 + k] - clean[6 * 24 + k]).abs())
            .sum();
        assert!(leak > 10.0, "{leak}");
        // Every other day ahead is the same with and without the list.
        for k in (0..HORIZON).filter(|k| k / 24 != 1 && k / 24 != 6) {
            assert!((aware[k] - plain[k]).abs() < 1e-9, "hour {k}");
        }
    }

    #[test]
    fn seasonal_naive_repeats_last_week_and_bridges_gaps() {
        let mut h = weekly(6);
        let n = h.series.values.len();
        // A long gap in the last week: the week before fills it.
        for v in &mut h.series.values[n - 100..n - 80] {
            *v = f64::NAN;
        }
        let fitted = SeasonalNaive.fit(&h).unwrap();
        let fc = fitted.predict(&h).unwrap();
        assert_eq!(fc.points.len(), HORIZON);
        assert_eq!(fc.start, n as i64 * 3600);
        let truth = weekly(7).series.values[n..].to_vec();
        for (p, t) in fc.points.iter().zip(&truth) {
            assert!((p - t).abs() < 1e-9);
        }
        assert!(fc.lower.iter().zip(&fc.upper).all(|(l, u)| l <= u));
        let short = weekly(1).until(100);
        assert!(matches!(
            SeasonalNaive.fit(&short).map(|_| ()),
            Err(ForecastError::TooShort { .. }) | Ok(())
        ));
        assert!(matches!(
            FittedSeasonalNaive {
                band: fitted.band.clone()
            }
            .predict(&short),
            Err(ForecastError::TooShort { .. })
        ));
    }

    #[test]
    fn seasonal_mean_averages_the_same_hour_of_the_last_weeks() {
        // Week k holds the value k everywhere: the mean of weeks 3..=6 is 4.5.
        let values: Vec<f64> = (0..6 * WEEK).map(|i| (i / WEEK + 1) as f64).collect();
        let h = History::hourly(0, values, chrono_tz::UTC);
        let fc = SeasonalMean::default()
            .fit(&h)
            .unwrap()
            .predict(&h)
            .unwrap();
        assert!(
            fc.points.iter().all(|p| (p - 4.5).abs() < 1e-12),
            "{:?}",
            &fc.points[..3]
        );
        assert_eq!(fc.model, "seasonal-mean-4w");
        // With fewer weeks than asked, the known ones are averaged.
        let two = History::hourly(
            0,
            (0..2 * WEEK).map(|i| (i / WEEK) as f64).collect(),
            chrono_tz::UTC,
        );
        let fc = FittedSeasonalMean {
            weeks: 4,
            band: Band::from_residuals(&[], HORIZON),
        }
        .predict(&two)
        .unwrap();
        assert!(fc.points.iter().all(|p| (p - 0.5).abs() < 1e-12));
    }

    #[test]
    fn mstl_ets_follows_a_clean_weekly_pattern() {
        let h = weekly(6);
        let fitted = MstlEts::default().fit(&h).unwrap();
        let fc = fitted.predict(&h).unwrap();
        let truth = weekly(7).series.values[6 * WEEK..].to_vec();
        let mae = fc
            .points
            .iter()
            .zip(&truth)
            .map(|(p, t)| (p - t).abs())
            .sum::<f64>()
            / HORIZON as f64;
        assert!(mae < 1.0, "MAE {mae}");
        assert_eq!(fitted.name(), "mstl-ets");
    }
}
