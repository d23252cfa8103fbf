//! The 10-90% band of a forecast, from residuals of past forecasts per horizon step: step `h`
//! gets the 10th and 90th percentile of `actual - forecast` at step `h` over the validation
//! forecasts. Models and baselines get their band the same way.
//!
//! A step with fewer than [`MIN_PER_STEP`] residuals (a young device has one or two validation
//! forecasts) takes the percentiles of all steps' residuals pooled: one residual per step would
//! give a band of zero width beside the forecast, not around it.

/// Residuals a step needs for its own percentiles; fewer: the pooled ones.
pub const MIN_PER_STEP: usize = 5;

/// Residual percentiles per horizon step.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Band {
    /// 10th percentile of the residual, per step.
    pub q10: Vec<f64>,
    /// 90th percentile of the residual, per step.
    pub q90: Vec<f64>,
}

impl Band {
    /// From residual rows (one per past forecast, shorter or `NaN` where the actual was
    /// unknown); with no residual at all, a zero-width band.
    pub fn from_residuals(rows: &[Vec<f64>], horizon: usize) -> Band {
        let mut pooled: Vec<f64> = rows
            .iter()
            .flat_map(|row| row.iter().take(horizon).copied())
            .filter(|v| v.is_finite())
            .collect();
        pooled.sort_by(f64::total_cmp);
        let mut q10 = Vec::with_capacity(horizon);
        let mut q90 = Vec::with_capacity(horizon);
        for h in 0..horizon {
            let mut r: Vec<f64> = rows
                .iter()
                .filter_map(|row| row.get(h).copied())
                .filter(|v| v.is_finite())
                .collect();
            r.sort_by(f64::total_cmp);
            let r = if r.len() < MIN_PER_STEP { &pooled } else { &r };
            q10.push(quantile(r, 0.1));
            q90.push(quantile(r, 0.9));
        }
        Band { q10, q90 }
    }

    /// The band `factor` times as wide on each side of the forecast.
    pub fn widened(&self, factor: f64) -> Band {
        Band {
            q10: self.q10.iter().map(|q| q * factor).collect(),
            q90: self.q90.iter().map(|q| q * factor).collect(),
        }
    }

    /// Share of the known `actual - forecast` residuals in `rows` that lie inside the band.
    pub fn coverage(&self, rows: &[Vec<f64>]) -> f64 {
        let (mut inside, mut known) = (0usize, 0usize);
        for row in rows {
            for (h, r) in row.iter().enumerate().filter(|(_, r)| r.is_finite()) {
                let (lo, hi) = (self.q10.get(h), self.q90.get(h));
                known += 1;
                inside += usize::from(lo.is_some_and(|lo| lo <= r) && hi.is_some_and(|hi| r <= hi));
            }
        }
        if known == 0 {
            f64::NAN
        } else {
            inside as f64 / known as f64
        }
    }

    /// Lower and upper bounds around `points`; never crossing (lower <= point <= upper is not
    /// promised, lower <= upper is).
    pub fn apply(&self, points: &[f64]) -> (Vec<f64>, Vec<f64>) {
        points
            .iter()
            .enumerate()
            .map(|(h, p)| {
                let (a, b) = (
                    p + self.q10.get(h).copied().unwrap_or(0.0),
                    p + self.q90.get(h).copied().unwrap_or(0.0),
                );
                (a.min(b), a.max(b))
            })
            .unzip()
    }
}

/// Linear-interpolated quantile of sorted values; 0 for none.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let pos = q * (n - 1) as f64;
            let (i, frac) = (pos.floor() as usize, pos.fract());
            sorted[i] + (sorted[(i + 1).min(n - 1)] - sorted[i]) * frac
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_per_step() {
        let rows: Vec<Vec<f64>> = (0..=10)
            .map(|i| vec![i as f64, -(i as f64), f64::NAN])
            .collect();
        let b = Band::from_residuals(&rows, 3);
        assert!((b.q10[0] - 1.0).abs() < 1e-12 && (b.q90[0] - 9.0).abs() < 1e-12);
        assert!((b.q10[1] + 9.0).abs() < 1e-12 && (b.q90[1] + 1.0).abs() < 1e-12);
        // No residual at step 2: the 22 of steps 0 and 1 pooled (-10..=10, 0 twice).
        assert!(
            (b.q10[2] + 7.9).abs() < 1e-9 && (b.q90[2] - 7.9).abs() < 1e-9,
            "{b:?}"
        );
        let (lo, hi) = b.apply(&[100.0, 100.0, 100.0]);
        assert_eq!((lo[0], hi[0]), (101.0, 109.0));
        assert_eq!((lo[1], hi[1]), (91.0, 99.0));
        assert_eq!(Band::from_residuals(&[], 2).q90, vec![0.0, 0.0]);
    }

    #[test]
    fn a_single_past_forecast_gives_a_band_around_the_forecast_not_beside_it() {
        let row: Vec<f64> = (0..48).map(|h| ((h * 7) % 11) as f64 - 5.0).collect();
        let b = Band::from_residuals(&[row], 48);
        let (lo, hi) = b.apply(&[50.0; 48]);
        for h in 0..48 {
            assert!(
                lo[h] < 50.0 && 50.0 < hi[h],
                "step {h}: {} .. {}",
                lo[h],
                hi[h]
            );
        }
    }
}
