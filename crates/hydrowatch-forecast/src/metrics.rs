//! Forecast accuracy, as the Battle of Water Demand Forecasting scores it: PI1 = mean absolute
//! error over hours 1-24, PI2 = largest absolute error over hours 1-24, PI3 = mean absolute error
//! over hours 25-168; and RMSE and MAPE over the whole horizon. Hours whose actual value is
//! unknown are left out of every score (and counted).

/// Scores of one forecast (or the mean of several).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scores {
    /// Mean absolute error, hours 1-24.
    pub pi1: f64,
    /// Largest absolute error, hours 1-24.
    pub pi2: f64,
    /// Mean absolute error, hours 25-168.
    pub pi3: f64,
    /// Root mean squared error, all hours.
    pub rmse: f64,
    /// Mean absolute percentage error (%), all hours with a non-zero actual.
    pub mape: f64,
}

impl Scores {
    /// The selection rule, the one every choice between models uses (`backtest --select`, the
    /// weekly retraining, `train --tune`): PI1 + PI3, lower is better.
    pub fn selection(&self) -> f64 {
        self.pi1 + self.pi3
    }

    /// Scores `forecast` against `actual` (`NaN` = unknown); `None` if hours 1-24 have no known
    /// actual at all. A score with no known actual in its hours (PI3 when hours 25-168 are all
    /// unknown, MAPE when every actual is zero) is `NaN`.
    pub fn of(actual: &[f64], forecast: &[f64]) -> Option<Scores> {
        let errs: Vec<Option<f64>> = actual
            .iter()
            .zip(forecast)
            .map(|(a, f)| a.is_finite().then(|| f - a))
            .collect();
        let mean_abs = |r: &[Option<f64>]| {
            let v: Vec<f64> = r.iter().flatten().map(|e| e.abs()).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let day = &errs[..errs.len().min(24)];
        let rest = if errs.len() > 24 { &errs[24..] } else { &[] };
        let pi1 = mean_abs(day)?;
        let pi2 = day.iter().flatten().fold(0.0f64, |m, e| m.max(e.abs()));
        let pi3 = mean_abs(rest).unwrap_or(f64::NAN);
        let all: Vec<f64> = errs.iter().flatten().copied().collect();
        let rmse = (all.iter().map(|e| e * e).sum::<f64>() / all.len() as f64).sqrt();
        let pct: Vec<f64> = actual
            .iter()
            .zip(forecast)
            .filter(|(a, _)| a.is_finite() && **a != 0.0)
            .map(|(a, f)| ((f - a) / a).abs() * 100.0)
            .collect();
        let mape = if pct.is_empty() {
            f64::NAN
        } else {
            pct.iter().sum::<f64>() / pct.len() as f64
        };
        Some(Scores {
            pi1,
            pi2,
            pi3,
            rmse,
            mape,
        })
    }

    /// The mean of several scores, field by field, each over the forecasts that have it.
    pub fn mean(all: &[Scores]) -> Scores {
        let avg = |f: fn(&Scores) -> f64| {
            let known: Vec<f64> = all.iter().map(f).filter(|v| v.is_finite()).collect();
            if known.is_empty() {
                f64::NAN
            } else {
                known.iter().sum::<f64>() / known.len() as f64
            }
        };
        Scores {
            pi1: avg(|s| s.pi1),
            pi2: avg(|s| s.pi2),
            pi3: avg(|s| s.pi3),
            rmse: avg(|s| s.rmse),
            mape: avg(|s| s.mape),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn battle_metrics() {
        let actual: Vec<f64> = (0..168).map(|_| 10.0).collect();
        let mut fc = actual.clone();
        fc[0] = 14.0; // error 4 in hour 1
        fc[30] = 5.0; // error 5 in hour 31
        let s = Scores::of(&actual, &fc).unwrap();
        assert!((s.pi1 - 4.0 / 24.0).abs() < 1e-12);
        assert_eq!(s.pi2, 4.0);
        assert!((s.pi3 - 5.0 / 144.0).abs() < 1e-12);
        assert!((s.rmse - ((16.0 + 25.0) / 168.0f64).sqrt()).abs() < 1e-12);
        assert!((s.mape - (40.0 + 50.0) / 168.0).abs() < 1e-9);
        // Unknown actuals are left out, not counted as errors.
        let mut gappy = actual.clone();
        gappy[0] = f64::NAN;
        assert_eq!(Scores::of(&gappy, &fc).unwrap().pi2, 0.0);
        assert!(Scores::of(&vec![f64::NAN; 168], &fc).is_none());
        // Hours 25-168 unknown: PI3 is NaN and the mean of several skips it.
        let mut first_day_only = vec![f64::NAN; 168];
        first_day_only[..24].fill(10.0);
        let partial = Scores::of(&first_day_only, &fc).unwrap();
        assert!(partial.pi3.is_nan());
        let mean = Scores::mean(&[partial, s]);
        assert_eq!(mean.pi3, s.pi3);
        assert_eq!(mean.pi1, (partial.pi1 + s.pi1) / 2.0);
    }
}
