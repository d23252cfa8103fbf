//! Evenly spaced series and the gap rules of design.md.
//!
//! Invariants:
//! - a [`Series`] value `i` is the mean of the readings in `[start + i·step, start + (i+1)·step)`;
//!   `NaN` marks an interval without any reading, and nothing else is ever `NaN`;
//! - [`fill_gaps`] never invents a value inside a gap longer than the limit: such intervals stay
//!   `NaN` and are marked unusable, so every window that touches them is dropped.

use hydrowatch_core::Timestamp;

use crate::ForecastError;

/// An evenly spaced series (hourly, usually).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Start of the first interval.
    pub start: Timestamp,
    /// Interval length, seconds.
    pub step: i64,
    /// One mean per interval; `NaN` where the interval had no reading.
    pub values: Vec<f64>,
}

impl Series {
    /// Means of `points` per interval of `step` seconds, intervals starting at
    /// `ts ≡ phase (mod step)`. Points may come in any order; a non-finite value is an error.
    pub fn resample(
        points: &[(Timestamp, f64)],
        step: i64,
        phase: i64,
    ) -> Result<Series, ForecastError> {
        if step <= 0 {
            return Err(ForecastError::Input(format!(
                "interval must be positive, got {step} s"
            )));
        }
        if let Some((ts, v)) = points.iter().find(|(_, v)| !v.is_finite()) {
            return Err(ForecastError::NonFinite { ts: *ts, value: *v });
        }
        let bucket = |ts: Timestamp| ts - (ts - phase).rem_euclid(step);
        let (Some(lo), Some(hi)) = (
            points.iter().map(|p| bucket(p.0)).min(),
            points.iter().map(|p| bucket(p.0)).max(),
        ) else {
            return Ok(Series {
                start: phase,
                step,
                values: Vec::new(),
            });
        };
        let n = ((hi - lo) / step + 1) as usize;
        let mut sum = vec![0.0; n];
        let mut count = vec![0u32; n];
        for (ts, v) in points {
            let i = ((bucket(*ts) - lo) / step) as usize;
            sum[i] += v;
            count[i] += 1;
        }
        let values = sum
            .iter()
            .zip(&count)
            .map(|(s, &c)| if c == 0 { f64::NAN } else { s / f64::from(c) })
            .collect();
        Ok(Series {
            start: lo,
            step,
            values,
        })
    }

    /// Start of interval `i`.
    pub fn time(&self, i: usize) -> Timestamp {
        self.start + self.step * i as i64
    }

    /// End of the last interval (exclusive).
    pub fn end(&self) -> Timestamp {
        self.time(self.values.len())
    }

    /// The intervals `[from, to)` as a new series.
    pub fn slice(&self, from: usize, to: usize) -> Series {
        Series {
            start: self.time(from),
            step: self.step,
            values: self.values[from..to].to_vec(),
        }
    }

    /// Number of missing intervals.
    pub fn missing(&self) -> usize {
        self.values.iter().filter(|v| v.is_nan()).count()
    }
}

/// How gaps are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GapRules {
    /// Gaps of at most this many intervals are filled with the last value before them.
    pub carry_forward: usize,
    /// Longer gaps of at most this many intervals are interpolated linearly; longer ones make
    /// their intervals unusable.
    pub max_interpolate: usize,
}

impl Default for GapRules {
    /// Carry forward up to 3 hours, interpolate up to 6.
    fn default() -> Self {
        GapRules {
            carry_forward: 3,
            max_interpolate: 6,
        }
    }
}

/// A series after [`fill_gaps`].
#[derive(Debug, Clone, PartialEq)]
pub struct Filled {
    /// Values with the short gaps filled; `NaN` where unusable.
    pub values: Vec<f64>,
    /// False where the value is unknown (a long gap, or a gap at the start with nothing before).
    pub usable: Vec<bool>,
    /// Intervals filled by carrying forward.
    pub carried: usize,
    /// Intervals filled by interpolation.
    pub interpolated: usize,
}

impl Filled {
    /// Number of unusable intervals.
    pub fn unusable(&self) -> usize {
        self.usable.iter().filter(|u| !**u).count()
    }
}

/// Applies the gap rules to `values` (`NaN` = missing).
pub fn fill_gaps(values: &[f64], rules: GapRules) -> Filled {
    let mut out = values.to_vec();
    let mut usable: Vec<bool> = values.iter().map(|v| !v.is_nan()).collect();
    let (mut carried, mut interpolated) = (0, 0);
    let mut i = 0;
    while i < values.len() {
        if !values[i].is_nan() {
            i += 1;
            continue;
        }
        let start = i;
        while i < values.len() && values[i].is_nan() {
            i += 1;
        }
        let len = i - start;
        let before = start.checked_sub(1).map(|j| values[j]);
        let after = values.get(i).copied();
        match (before, after) {
            (Some(b), _) if len <= rules.carry_forward => {
                out[start..i].fill(b);
                usable[start..i].fill(true);
                carried += len;
            }
            (Some(b), Some(a)) if len <= rules.max_interpolate => {
                for (k, slot) in out[start..i].iter_mut().enumerate() {
                    let t = (k + 1) as f64 / (len + 1) as f64;
                    *slot = b + (a - b) * t;
                }
                usable[start..i].fill(true);
                interpolated += len;
            }
            _ => {}
        }
    }
    Filled {
        values: out,
        usable,
        carried,
        interpolated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: f64 = f64::NAN;

    #[test]
    fn resample_means_per_interval_with_gaps() {
        let pts = [
            (3600 + 60, 2.0),
            (3600 + 120, 4.0),
            (3 * 3600, 10.0),
            (3600, 6.0),
        ];
        let s = Series::resample(&pts, 3600, 0).unwrap();
        assert_eq!(s.start, 3600);
        assert_eq!(s.values.len(), 3);
        assert_eq!(s.values[0], 4.0);
        assert!(s.values[1].is_nan());
        assert_eq!(s.values[2], 10.0);
        assert_eq!(s.end(), 4 * 3600);
        // Half-hour phase: buckets start at :30.
        let s = Series::resample(&[(1800, 1.0), (5399, 3.0)], 3600, 1800).unwrap();
        assert_eq!((s.start, s.values.clone()), (1800, vec![2.0]));
        let e = Series::resample(&[(0, f64::NAN)], 3600, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("NaN"), "{e}");
    }

    #[test]
    fn gap_rules() {
        let rules = GapRules {
            carry_forward: 3,
            max_interpolate: 6,
        };
        // 3 missing: carried forward.
        let f = fill_gaps(&[1.0, N, N, N, 5.0], rules);
        assert_eq!(f.values, vec![1.0, 1.0, 1.0, 1.0, 5.0]);
        assert_eq!((f.carried, f.interpolated, f.unusable()), (3, 0, 0));
        // 4 missing: interpolated.
        let f = fill_gaps(&[0.0, N, N, N, N, 5.0], rules);
        assert_eq!(f.values, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(f.interpolated, 4);
        // 7 missing: unusable, never invented.
        let f = fill_gaps(&[0.0, N, N, N, N, N, N, N, 8.0], rules);
        assert!(f.values[1..8].iter().all(|v| v.is_nan()));
        assert_eq!(f.unusable(), 7);
        assert!(f.usable[0] && f.usable[8]);
        // A leading gap has nothing to carry; a short trailing gap is carried.
        let f = fill_gaps(&[N, 1.0, N, N], rules);
        assert_eq!(
            (f.usable.clone(), f.values[3]),
            (vec![false, true, true, true], 1.0)
        );
        // A long trailing gap cannot be interpolated.
        let f = fill_gaps(&[1.0, N, N, N, N], rules);
        assert_eq!(f.unusable(), 4);
    }
}
