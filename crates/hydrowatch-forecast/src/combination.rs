//! Forecast combination, the default forecaster: the seasonal blend, MSTL+ETS and the network,
//! each day ahead a weighted mean of the three, the weights learnt per series from its own
//! recent forecasts. No member is best in every season (the blend follows a stable week, MSTL
//! follows a level that moves, the network learns what the calendar does to this series), and
//! which one leads changes with the season and the series; the weights follow it at every fit.
//!
//! Fitting, on a history of `n` hours:
//! 1. the weighting origins are the local midnights of its last [`WEIGHT_WEEKS`] weeks whose 168
//!    hours lie inside it;
//! 2. the network is trained on the history before the first of them (so its forecasts from
//!    them are out of sample, like the baselines', which learn nothing); a history too short
//!    for a network leaves it out;
//! 3. every member forecasts from every weighting origin; for each day ahead, the weights are
//!    the point of a grid on the simplex (steps of 1/[`GRID`]) with the lowest mean absolute
//!    error of the weighted mean over those forecasts (PI1 and PI3 are mean absolute errors);
//!    with fewer than [`MIN_ORIGINS`] origins the members weigh the same;
//! 4. the band is the 10th-90th percentile of the weighted mean's residuals per hour ahead,
//!    widened by the factor the series' own history asks for ([`widening`]): residuals of the
//!    last weeks understate the next week's (demand changes with the season, and the weights
//!    were chosen on those very residuals).
//!
//! Invariants:
//! - the weights of each day ahead are non-negative and sum to 1, so the combination never
//!   leaves the range its members span;
//! - where a member cannot forecast (the network's input in a long gap, MSTL on a short
//!   history), the seasonal blend's forecast stands in for it, when fitting and forecasting
//!   alike; a history too short for the blend cannot be combined (an error the caller answers
//!   with a baseline).

use hydrowatch_core::Timestamp;
use hydrowatch_core::time::DAY;
use serde::{Deserialize, Serialize};

use crate::baseline::{
    BLEND_WEEKS, MstlEts, PREDICT_TAIL, SeasonalBlend, mstl_points, seasonal_blend_points,
};
use crate::clock::{WallClock, day_starts};
use crate::neural::{EpochLog, FittedNeural, ModelKind, NeuralConfig, Strategy};
use crate::{Band, Fit, Forecast, ForecastError, HORIZON, History, Predict, WEEK};

/// Weeks of daily origins whose forecasts set a combination's weights: the weeks the baselines
/// estimate their bands on; the weights barely moved between 2 and 6 weeks in development.
pub const WEIGHT_WEEKS: usize = 4;
/// Fewest weighting origins to learn weights from; with fewer the members weigh the same.
pub const MIN_ORIGINS: usize = 7;
/// Weights are multiples of `1 / GRID`.
pub const GRID: usize = 20;
/// Days ahead, each with its own weights.
const DAYS: usize = HORIZON / 24;
/// Weeks of history [`widening`] learns from (cut points, one a week).
const CALIBRATION_WEEKS: usize = 26;
/// The share of hours a 10-90% band should hold.
const BAND_SHARE: f64 = 0.8;

/// How much wider than the residuals of 4 weeks of daily forecasts a band must be to hold 80%
/// of the actual hours of the week after them, on this series: learnt from the seasonal blend
/// (cheap, learns nothing, so its residuals are honest) at a cut point every week of the
/// history's last [`CALIBRATION_WEEKS`] weeks, the band from the 28 local midnights before a cut
/// judged on the 7 after it, all cuts pooled; the factor is found by bisection in [0.25, 4].
/// 1 when the history holds fewer than 2 cut points.
pub fn widening(history: &History) -> f64 {
    let tail = (CALIBRATION_WEEKS + WEIGHT_WEEKS + BLEND_WEEKS + 2) * WEEK;
    let Ok(clock) = WallClock::of(history, Some(tail)) else {
        return 1.0;
    };
    let local = &clock.local;
    let v = &local.series.values;
    let n = v.len();
    // Local midnights whose blend forecast can be made and scored.
    let midnights: Vec<usize> = (BLEND_WEEKS * WEEK..=n.saturating_sub(HORIZON))
        .filter(|&i| local.series.time(i).rem_euclid(DAY) == 0)
        .collect();
    let residuals: Vec<Vec<f64>> = midnights
        .iter()
        .filter_map(|&o| {
            let fc = seasonal_blend_points(&local.until(o)).ok()?;
            Some(
                v[o..o + HORIZON]
                    .iter()
                    .zip(&fc)
                    .map(|(a, f)| a - f)
                    .collect(),
            )
        })
        .collect();
    let past = WEIGHT_WEEKS * 7;
    // (band from the 28 origins before a cut, residuals of the 7 after it)
    let cuts: Vec<(Band, &[Vec<f64>])> = (past..residuals.len().saturating_sub(6))
        .step_by(7)
        .map(|c| {
            (
                Band::from_residuals(&residuals[c - past..c], HORIZON),
                &residuals[c..c + 7],
            )
        })
        .collect();
    if cuts.len() < 2 {
        return 1.0;
    }
    let coverage = |k: f64| {
        let (inside, total) = cuts.iter().fold((0.0, 0.0), |(i, t), (band, rows)| {
            let c = band.widened(k).coverage(rows);
            let known = rows.iter().flatten().filter(|r| r.is_finite()).count() as f64;
            if c.is_finite() {
                (i + c * known, t + known)
            } else {
                (i, t)
            }
        });
        if total > 0.0 {
            inside / total
        } else {
            BAND_SHARE
        }
    };
    let (mut lo, mut hi) = (0.25, 4.0);
    for _ in 0..30 {
        let mid = (lo + hi) / 2.0;
        if coverage(mid) < BAND_SHARE {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// A combination's configuration: its members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Combination {
    /// The network member; `None` combines the baselines only.
    pub network: Option<NeuralConfig>,
    /// The MSTL+ETS member.
    pub mstl_weeks: usize,
}

impl Default for Combination {
    /// The seasonal blend, MSTL+ETS on 16 weeks and the default network (LSTM, MIMO).
    fn default() -> Self {
        Combination {
            network: Some(NeuralConfig::new(ModelKind::Lstm, Strategy::Mimo)),
            mstl_weeks: MstlEts::default().weeks,
        }
    }
}

/// What fitting a combination saw and learnt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CombinationReport {
    /// The first weighting origin.
    pub from: Timestamp,
    /// End of the history.
    pub to: Timestamp,
    /// Weighting origins used.
    pub origins: usize,
    /// Mean absolute error of each member (in [`FittedCombination::members`] order) per day
    /// ahead over the weighting origins.
    pub member_mae: Vec<Vec<f64>>,
    /// Mean absolute error of the combination per day ahead over the same origins (in sample:
    /// the weights were chosen on them).
    pub combined_mae: Vec<f64>,
    /// Why the network is not a member, when it is not.
    pub without_network: Option<String>,
    /// The factor the band was widened by ([`widening`]).
    pub widening: f64,
}

/// A fitted combination.
pub struct FittedCombination {
    /// Its configuration.
    pub config: Combination,
    /// The trained network, when one could be trained.
    pub network: Option<FittedNeural>,
    /// Member names, in the order of each day's weights.
    pub members: Vec<String>,
    /// Per day ahead, each member's weight.
    pub weights: Vec<Vec<f64>>,
    /// The 10-90% band of the combination.
    pub band: Band,
    /// What fitting saw.
    pub report: CombinationReport,
}

/// The points of the weights grid on the simplex of `members` weights.
fn simplex(members: usize) -> Vec<Vec<f64>> {
    fn fill(left: usize, slots: usize, prefix: &mut Vec<usize>, out: &mut Vec<Vec<f64>>) {
        if slots == 1 {
            prefix.push(left);
            out.push(prefix.iter().map(|&k| k as f64 / GRID as f64).collect());
            prefix.pop();
            return;
        }
        for k in 0..=left {
            prefix.push(k);
            fill(left - k, slots - 1, prefix, out);
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    fill(GRID, members.max(1), &mut Vec::new(), &mut out);
    out
}

/// For each day ahead, the weights of the `members` with the lowest mean absolute error of the
/// weighted mean of `forecasts[origin][member]` against `actuals[origin]` (unknown hours left
/// out), from a grid; ties go to the weights nearest to equal. Fewer than [`MIN_ORIGINS`]
/// origins (none at all included) give equal weights.
pub fn learn_weights(
    members: usize,
    forecasts: &[Vec<Vec<f64>>],
    actuals: &[Vec<f64>],
) -> Vec<Vec<f64>> {
    let members = members.max(1);
    let equal = vec![1.0 / members as f64; members];
    if forecasts.len() < MIN_ORIGINS {
        return vec![equal; DAYS];
    }
    let grid = simplex(members);
    let distance = |w: &[f64]| -> f64 { w.iter().zip(&equal).map(|(a, b)| (a - b).abs()).sum() };
    (0..DAYS)
        .map(|day| {
            // (member values, actual) of the day's known hours.
            let hours: Vec<(Vec<f64>, f64)> = forecasts
                .iter()
                .zip(actuals)
                .flat_map(|(fc, actual)| {
                    (day * 24..(day + 1) * 24)
                        .filter(|&h| actual[h].is_finite())
                        .map(|h| (fc.iter().map(|m| m[h]).collect(), actual[h]))
                })
                .collect();
            if hours.is_empty() {
                return equal.clone();
            }
            let error = |w: &[f64]| -> f64 {
                hours
                    .iter()
                    .map(|(x, a)| (x.iter().zip(w).map(|(x, w)| x * w).sum::<f64>() - a).abs())
                    .sum::<f64>()
            };
            grid.iter()
                .map(|w| (error(w), distance(w), w))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)))
                .map_or_else(|| equal.clone(), |(_, _, w)| w.clone())
        })
        .collect()
}

/// Mean absolute error per day ahead of `forecasts` (one per origin) against `actuals`.
fn day_mae(forecasts: &[Vec<f64>], actuals: &[Vec<f64>]) -> Vec<f64> {
    (0..DAYS)
        .map(|day| {
            let errs: Vec<f64> = forecasts
                .iter()
                .zip(actuals)
                .flat_map(|(f, a)| (day * 24..(day + 1) * 24).map(move |h| (f[h] - a[h]).abs()))
                .filter(|e| e.is_finite())
                .collect();
            errs.iter().sum::<f64>() / errs.len().max(1) as f64
        })
        .collect()
}

/// Each day ahead's weighted mean of member forecasts.
fn combine(weights: &[Vec<f64>], members: &[Vec<f64>]) -> Vec<f64> {
    (0..HORIZON)
        .map(|h| {
            let w = &weights[(h / 24).min(weights.len() - 1)];
            members.iter().zip(w).map(|(m, w)| m[h] * w).sum()
        })
        .collect()
}

/// The members' forecasts after `history` (in `members` order), the blend's standing in for a
/// member that cannot forecast there.
fn member_points(
    network: Option<&FittedNeural>,
    mstl_weeks: usize,
    history: &History,
) -> Result<Vec<Vec<f64>>, ForecastError> {
    // Both baselines read the same wall-clock history: it is laid out once for them.
    let clock = WallClock::of(history, Some(PREDICT_TAIL))?;
    let blend = clock.to_real(&seasonal_blend_points(&clock.local)?);
    let or_blend = |r: Result<Vec<f64>, ForecastError>| match r {
        Ok(points) => Ok(points),
        Err(ForecastError::Input(_) | ForecastError::TooShort { .. }) => Ok(blend.clone()),
        Err(e) => Err(e),
    };
    let mstl = or_blend(mstl_points(&clock.local, mstl_weeks.max(2)).map(|p| clock.to_real(&p)))?;
    let mut out = vec![blend.clone(), mstl];
    if let Some(net) = network {
        out.push(or_blend(net.predict(history).map(|fc| fc.points))?);
    }
    Ok(out)
}

impl Combination {
    /// Its name in reports and the database.
    pub fn name(&self) -> String {
        "combination".into()
    }

    /// [`Fit::fit`], calling `progress(network index, epoch)` while the network trains.
    pub fn fit_with_progress(
        &self,
        history: &History,
        progress: impl FnMut(usize, &EpochLog),
    ) -> Result<FittedCombination, ForecastError> {
        let n = history.series.values.len();
        let origins = if n >= HORIZON {
            day_starts(
                history,
                n.saturating_sub(WEIGHT_WEEKS * WEEK + HORIZON),
                n - HORIZON,
            )
        } else {
            Vec::new()
        };
        let cut = origins.first().copied().unwrap_or(n);
        let (network, without_network) = match &self.network {
            None => (None, Some("not configured".to_string())),
            Some(config) => match config.fit_with_progress(&history.until(cut), progress) {
                Ok(net) => (Some(net), None),
                Err(e @ (ForecastError::TooShort { .. } | ForecastError::Input(_))) => {
                    (None, Some(e.to_string()))
                }
                Err(e) => return Err(e),
            },
        };
        let mut members = vec![SeasonalBlend::NAME.to_string(), MstlEts::NAME.to_string()];
        if let Some(net) = &network {
            members.push(net.name());
        }
        let mut forecasts = Vec::with_capacity(origins.len());
        let mut actuals = Vec::with_capacity(origins.len());
        let mut used = Vec::with_capacity(origins.len());
        for &o in &origins {
            match member_points(network.as_ref(), self.mstl_weeks, &history.until(o)) {
                Ok(points) => {
                    forecasts.push(points);
                    actuals.push(history.series.values[o..o + HORIZON].to_vec());
                    used.push(o);
                }
                // Too early for the blend: an origin the weights cannot use.
                Err(ForecastError::TooShort { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        // Nothing to learn from and nothing to forecast with: the blend cannot forecast yet.
        if forecasts.is_empty() {
            seasonal_blend_points(&WallClock::of(history, Some(PREDICT_TAIL))?.local)?;
        }
        let weights = learn_weights(members.len(), &forecasts, &actuals);
        let combined: Vec<Vec<f64>> = forecasts.iter().map(|f| combine(&weights, f)).collect();
        let residuals: Vec<Vec<f64>> = combined
            .iter()
            .zip(&actuals)
            .map(|(c, a)| a.iter().zip(c).map(|(a, c)| a - c).collect())
            .collect();
        let widening = widening(history);
        let report = CombinationReport {
            from: used
                .first()
                .map_or(history.series.end(), |&o| history.series.time(o)),
            to: history.series.end(),
            origins: used.len(),
            member_mae: (0..members.len())
                .map(|m| {
                    let of_member: Vec<Vec<f64>> = forecasts.iter().map(|f| f[m].clone()).collect();
                    day_mae(&of_member, &actuals)
                })
                .collect(),
            combined_mae: day_mae(&combined, &actuals),
            without_network,
            widening,
        };
        Ok(FittedCombination {
            config: self.clone(),
            network,
            members,
            weights,
            band: Band::from_residuals(&residuals, HORIZON).widened(widening),
            report,
        })
    }
}

impl Fit for Combination {
    type Fitted = FittedCombination;

    fn fit(&self, history: &History) -> Result<FittedCombination, ForecastError> {
        self.fit_with_progress(history, |_, _| {})
    }
}

impl Predict for FittedCombination {
    fn predict(&self, history: &History) -> Result<Forecast, ForecastError> {
        let members = member_points(self.network.as_ref(), self.config.mstl_weeks, history)?;
        let points = combine(&self.weights, &members);
        let (lower, upper) = self.band.apply(&points);
        Ok(Forecast {
            start: history.series.end(),
            step: history.series.step,
            points,
            lower,
            upper,
            model: self.name(),
        })
    }

    fn name(&self) -> String {
        self.config.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::SeasonalBlend;

    /// `weeks` of a daily cycle on a level that climbs steadily: MSTL's trend follows the
    /// climb, the seasonal blend (weeks 1-5 ago) lags behind it by weeks.
    fn climbing(weeks: usize) -> History {
        let values = (0..weeks * WEEK)
            .map(|i| {
                100.0
                    + 0.05 * i as f64
                    + 20.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin()
            })
            .collect();
        History::hourly(0, values, chrono_tz::UTC)
    }

    #[test]
    fn fitted_on_a_series_where_mstl_is_known_to_be_better_it_weighs_mstl() {
        let history = climbing(24);
        let fitted = Combination {
            network: None,
            ..Combination::default()
        }
        .fit(&history)
        .unwrap();
        assert_eq!(fitted.members, vec!["seasonal-blend", "mstl-ets"]);
        assert!(fitted.report.origins >= MIN_ORIGINS, "{:?}", fitted.report);
        for (day, w) in fitted.weights.iter().enumerate() {
            assert!(w[1] >= 0.8, "day {}: {w:?}", day + 1);
        }
        // The combination forecasts the climb as well as its better member.
        let fc = fitted.predict(&history).unwrap();
        let truth = climbing(25).series.values[24 * WEEK..].to_vec();
        let mae = |p: &[f64]| {
            p.iter()
                .zip(&truth)
                .map(|(a, b)| (a - b).abs())
                .sum::<f64>()
                / HORIZON as f64
        };
        let blend = SeasonalBlend
            .fit(&history)
            .unwrap()
            .predict(&history)
            .unwrap();
        assert!(
            mae(&fc.points) < 0.5 * mae(&blend.points),
            "{} vs {}",
            mae(&fc.points),
            mae(&blend.points)
        );
        assert!(fc.lower.iter().zip(&fc.upper).all(|(l, u)| l <= u));
        // Too short for the blend: refused, for the caller to answer with a baseline.
        assert!(matches!(
            Combination::default().fit(&climbing(3)),
            Err(ForecastError::TooShort { .. })
        ));
    }

    /// `weeks` of a daily cycle with deterministic pseudo-random noise whose size grows by
    /// `growth` per week.
    fn noisy(weeks: usize, growth: f64) -> History {
        let mut state = 12345u64;
        let values = (0..weeks * WEEK)
            .map(|i| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                let size = 4.0 * (1.0 + growth * (i / WEEK) as f64);
                50.0 + 20.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin() + size * u
            })
            .collect();
        History::hourly(0, values, chrono_tz::UTC)
    }

    #[test]
    fn the_band_is_widened_as_much_as_the_series_history_asks() {
        // Steady noise: the last weeks' residuals already hold the next week's (about 1).
        let steady = widening(&noisy(40, 0.0));
        assert!((0.8..1.3).contains(&steady), "{steady}");
        // Noise that grows every week: the next week's residuals are larger than the last
        // four weeks' were.
        let growing = widening(&noisy(40, 0.15));
        assert!(growing > steady + 0.1, "{growing} vs {steady}");
        // Too short to learn from: left as it is.
        assert_eq!(widening(&noisy(8, 0.0)), 1.0);
    }

    #[test]
    fn the_grid_covers_the_simplex() {
        let g = simplex(3);
        assert_eq!(g.len(), (GRID + 1) * (GRID + 2) / 2);
        assert!(
            g.iter()
                .all(|w| (w.iter().sum::<f64>() - 1.0).abs() < 1e-12)
        );
        assert!(g.iter().all(|w| w.iter().all(|&x| x >= 0.0)));
    }

    #[test]
    fn weights_favour_the_member_that_is_right_and_fall_back_to_equal() {
        // Member 0 is the truth plus a small error; member 1 is far off on days 1-3 and right
        // on days 4-7 (where member 0 errs more).
        let truth: Vec<f64> = (0..HORIZON).map(|h| 50.0 + (h % 24) as f64).collect();
        let origin = |k: usize| -> (Vec<Vec<f64>>, Vec<f64>) {
            let wobble = if k.is_multiple_of(2) { 1.0 } else { -1.0 };
            let a: Vec<f64> = truth
                .iter()
                .enumerate()
                .map(|(h, t)| t + if h < 72 { 0.5 * wobble } else { 3.0 * wobble })
                .collect();
            let b: Vec<f64> = truth
                .iter()
                .enumerate()
                .map(|(h, t)| if h < 72 { t + 20.0 } else { *t })
                .collect();
            (vec![a, b], truth.clone())
        };
        let (f, a): (Vec<_>, Vec<_>) = (0..10).map(origin).unzip();
        let w = learn_weights(2, &f, &a);
        assert_eq!(w.len(), DAYS);
        for (day, w) in w.iter().enumerate() {
            if day < 3 {
                assert!(w[0] >= 0.95, "day {day}: {w:?}");
            } else {
                assert!(w[1] >= 0.95, "day {day}: {w:?}");
            }
        }
        // Too few origins: equal weights.
        let w = learn_weights(2, &f[..MIN_ORIGINS - 1], &a[..MIN_ORIGINS - 1]);
        assert!(w.iter().all(|w| w == &vec![0.5, 0.5]));
        // No origin at all: still one weight per member (a single one was saved once, and the
        // model could not be read back).
        let w = learn_weights(2, &[], &[]);
        assert!(w.iter().all(|w| w == &vec![0.5, 0.5]));
    }

    /// 5-6 weeks of history: the blend can forecast, but no origin of the last 4 weeks has the
    /// 5 weeks it needs before it, so nothing is learnt; the model is still saved and read back.
    #[test]
    fn a_combination_fitted_before_any_weighting_origin_is_saved_and_read_back() {
        let history = climbing(6).until(5 * WEEK + 24);
        let fitted = Combination::default().fit(&history).unwrap();
        assert_eq!(fitted.report.origins, 0);
        assert!(
            fitted
                .weights
                .iter()
                .all(|w| w.len() == fitted.members.len())
        );
        let dir = tempfile::tempdir().unwrap();
        let context = crate::artifact::Context {
            step: 3600,
            timezone: history.timezone,
            holidays: history.holidays.clone(),
        };
        let model = crate::Fitted::Combination(Box::new(fitted));
        crate::artifact::save_fitted(&model, &context, &dir.path().join("m")).unwrap();
        let (back, _) = crate::artifact::load_fitted(&dir.path().join("m")).unwrap();
        assert_eq!(
            back.predict(&history).unwrap().points,
            model.predict(&history).unwrap().points
        );
    }
}
