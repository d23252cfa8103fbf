//! Min-max scaling, fitted on training data only and stored as two plain numbers.

/// Maps `[min, max]` of the training data onto `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MinMax {
    /// Smallest training value.
    pub min: f64,
    /// Largest training value.
    pub max: f64,
}

impl MinMax {
    /// Fits on the finite values of `values`; `None` when there are none.
    pub fn fit(values: &[f64]) -> Option<MinMax> {
        let finite = values.iter().copied().filter(|v| v.is_finite());
        let (min, max) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        (min <= max).then_some(MinMax { min, max })
    }

    fn range(&self) -> f64 {
        // A constant series scales to 0 instead of dividing by zero.
        if self.max > self.min {
            self.max - self.min
        } else {
            1.0
        }
    }

    /// Scales one value.
    pub fn scale(&self, v: f64) -> f64 {
        (v - self.min) / self.range()
    }

    /// Undoes [`MinMax::scale`].
    pub fn unscale(&self, v: f64) -> f64 {
        v * self.range() + self.min
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_range() {
        let s = MinMax::fit(&[4.0, f64::NAN, 2.0, 10.0]).unwrap();
        assert_eq!((s.min, s.max), (2.0, 10.0));
        assert_eq!(s.scale(2.0), 0.0);
        assert_eq!(s.scale(10.0), 1.0);
        for v in [-3.5, 0.0, 2.0, 7.25, 1e6] {
            assert!((s.unscale(s.scale(v)) - v).abs() < 1e-9 * v.abs().max(1.0));
        }
        let c = MinMax::fit(&[5.0, 5.0]).unwrap();
        assert_eq!(c.scale(5.0), 0.0);
        assert_eq!(c.unscale(0.0), 5.0);
        assert!(MinMax::fit(&[f64::NAN]).is_none());
    }
}
