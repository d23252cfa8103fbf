//! `hydrowatch bench ...`: measurements of this machine, printed with the command that made
//! them (docs/BENCHMARKS.md records them). Each bench calls the same library functions as the
//! commands it measures.

mod csv_store;
pub(crate) mod daemon;
pub(crate) mod detect;
pub(crate) mod fleet;
pub(crate) mod lstm;
pub(crate) mod storage;

/// The mean and the sample standard deviation (n - 1; 0 for one value) of `xs`: the one
/// statistic every bench prints as `mean ± sd`.
pub(crate) fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_spread_is_the_sample_standard_deviation() {
        let (mean, sd) = super::mean_sd(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(mean, 2.5);
        assert!((sd - 1.290_994).abs() < 1e-6, "{sd}");
        assert_eq!(super::mean_sd(&[7.0]), (7.0, 0.0));
    }
}
