//! The tables `hydrowatch backtest` prints: one per series, and summaries over series.

use hydrowatch_forecast::backtest::BacktestResult;
use hydrowatch_ops::contest::SummaryRow;

/// The table of one series: every forecaster's scores and its change against seasonal naive.
pub(crate) fn series(title: &str, rows: &[BacktestResult], banded: &[bool], markdown: bool) {
    let naive = rows
        .iter()
        .find(|r| r.name == "seasonal-naive")
        .map(|r| r.scores);
    println!();
    if markdown {
        println!("**{title}**\n");
        println!(
            "| forecaster | PI1 | PI2 | PI3 | RMSE | MAPE % | PI1 vs naive | PI3 vs naive | coverage | fit s | forecast ms | forecasts (by seasonal blend) |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    } else {
        println!("{title}");
        println!(
            "{:<24} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>8} {:>7} {:>9} {:>10}",
            "forecaster",
            "PI1",
            "PI2",
            "PI3",
            "RMSE",
            "MAPE%",
            "PI1/naive",
            "PI3/naive",
            "coverage",
            "fit s",
            "fcst ms",
            "by blend"
        );
    }
    for (r, banded) in rows.iter().zip(banded) {
        let s = r.scores;
        let (g1, g3) = naive.map_or((String::new(), String::new()), |n| {
            (pct(s.pi1, n.pi1), pct(s.pi3, n.pi3))
        });
        let coverage = coverage(r.coverage, *banded);
        if markdown {
            println!(
                "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {g1} | {g3} | {coverage} | {:.1} | {:.1} | {} ({}) |",
                r.name,
                s.pi1,
                s.pi2,
                s.pi3,
                s.rmse,
                s.mape,
                r.fit_seconds,
                r.predict_seconds * 1e3,
                r.origins,
                r.fallbacks
            );
        } else {
            println!(
                "{:<24} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>7.1} {:>9} {:>9} {:>8} {:>7.1} {:>9.1} {:>4}/{:<5}",
                r.name,
                s.pi1,
                s.pi2,
                s.pi3,
                s.rmse,
                s.mape,
                g1,
                g3,
                coverage,
                r.fit_seconds,
                r.predict_seconds * 1e3,
                r.fallbacks,
                r.origins
            );
        }
    }
}

fn coverage(c: f64, banded: bool) -> String {
    if banded && c.is_finite() {
        format!("{:.1}%", c * 100.0)
    } else {
        "-".into()
    }
}

/// A summary over several series (hydrowatch-ops' `summarise`).
pub(crate) fn summary(title: &str, rows: &[SummaryRow], markdown: bool) {
    println!();
    if markdown {
        println!("**{title}**\n");
        println!(
            "| forecaster | PI1 | PI2 | PI3 | RMSE | MAPE % | PI1 vs naive | PI2 vs naive | PI3 vs naive | coverage |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    } else {
        println!("{title} (\"vs naive\": the mean of each series' change)");
        println!(
            "{:<24} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>9} {:>8}",
            "forecaster",
            "PI1",
            "PI2",
            "PI3",
            "RMSE",
            "MAPE%",
            "PI1/naive",
            "PI2/naive",
            "PI3/naive",
            "coverage"
        );
    }
    for r in rows {
        let change = |c: Option<f64>| c.map_or("-".into(), |c| format!("{:+.1}%", c * 100.0));
        let (p1, p2, p3) = (
            change(r.vs_naive[0]),
            change(r.vs_naive[1]),
            change(r.vs_naive[2]),
        );
        let cov = coverage(r.coverage.unwrap_or(f64::NAN), r.coverage.is_some());
        let name = &r.name;
        let [pi1, pi2, pi3, rmse, mape] = r.means;
        if markdown {
            println!(
                "| {name} | {pi1:.3} | {pi2:.3} | {pi3:.3} | {rmse:.3} | {mape:.1} | {p1} | {p2} | {p3} | {cov} |"
            );
        } else {
            println!(
                "{name:<24} {pi1:>8.3} {pi2:>8.3} {pi3:>8.3} {rmse:>8.3} {mape:>7.1} {p1:>9} {p2:>9} {p3:>9} {cov:>8}"
            );
        }
    }
}

/// `x` relative to `base`, as a signed percentage.
fn pct(x: f64, base: f64) -> String {
    format!("{:+.1}%", (x / base - 1.0) * 100.0)
}
