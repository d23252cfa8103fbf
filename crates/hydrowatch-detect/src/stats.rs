//! Robust statistics the detector's modules share: the median and the scaled median absolute
//! deviation (a standard deviation that a few outliers do not move).

/// The median absolute deviation times this estimates a standard deviation under normal noise.
pub(crate) const MAD_SCALE: f64 = 1.4826;

/// Median and scaled median absolute deviation; reorders `values`.
pub(crate) fn robust(values: &mut [f64]) -> (f64, f64) {
    let median = median_of(values);
    for v in values.iter_mut() {
        *v = (*v - median).abs();
    }
    (median, MAD_SCALE * median_of(values))
}

/// The median by selection (linear time), the mean of the two middle values for even counts.
pub(crate) fn median_of(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = n / 2;
    let (lower, m, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if n % 2 == 1 {
        m
    } else {
        let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (below + m) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad_are_robust_to_outliers() {
        let mut v = vec![1.0, 2.0, 3.0, 4.0, 1000.0];
        let (m, s) = robust(&mut v);
        assert_eq!(m, 3.0);
        assert!((s - MAD_SCALE * 1.0).abs() < 1e-12);
        assert_eq!(median_of(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
