//! `hydrowatch backtest`: every forecaster of the registry (and other programs' forecasts read
//! from files) from the same origins of each series, scored overall and per season against
//! seasonal naive; `--select` records each series' winner.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use chrono_tz::Tz;
use clap::{Args, ValueEnum};
use hydrowatch_forecast::backtest::{
    BacktestResult, SEASONS, Schedule, Scored, backtest, external, origins, score, score_by_season,
};
use hydrowatch_forecast::combination::Combination;
use hydrowatch_forecast::forecaster::winner;
use hydrowatch_forecast::neural::NeuralConfig;
use hydrowatch_forecast::{Fit, Fitted, Forecast, ForecastError, Forecaster, HORIZON, History};

use hydrowatch_ops::forecasting as edge;

use crate::cli::Global;
use crate::context::Context;
use crate::forecasting::{fit_with_bar, holidays, read_history};

/// Which origins a backtest forecasts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OriginsArg {
    /// Every local midnight of the last --weeks weeks (default 8).
    Daily,
    /// Every local Monday 00:00 of the last --weeks weeks (default 52), refitted every 7 days.
    Weekly,
}

/// `hydrowatch backtest`
#[derive(Debug, Args)]
#[command(
    after_help = "Examples (the 10 DMAs of the Battle of Water Demand Forecasting):\n  \
hydrowatch backtest --timezone Europe/Rome --markdown shared/data/dma-inflow/dma_*.csv\n  \
hydrowatch backtest --timezone Europe/Rome --origins weekly --model none \\\n      \
--external statsforecast=peer/ shared/data/dma-inflow/dma_*.csv\n\n\
From each origin, every forecaster forecasts 168 hours using only the history before it. \
--origins daily: every local midnight of the last K weeks, each forecaster fitted once before \
them (--refit-days N: again every N days). --origins weekly: every local Monday 00:00 of the \
last K weeks (52: a year of seasons), fitted again every 7 days as a device retrains. PI1 = mean \
absolute error of hours 1-24, PI2 = largest absolute error of hours 1-24, PI3 = mean absolute \
error of hours 25-168 (in the series' unit); MAPE in %; coverage = share of the actual hours \
inside the 10-90% band (80% when the band is right). Tables per series, the mean over series, \
each series' change against seasonal naive, and the same per season of the origins (Dec-Feb, \
Mar-May, Jun-Aug, Sep-Nov).\n\n\
The public holidays of the zone's country are days off (`[forecast] country` and `holidays` \
change them). Without files, every series of the device database is backtested. --select \
records each series' winner (the lowest PI1 + PI3) as its default: `hydrowatch forecast` and the \
daemon then use it (a file's series is named by the file's stem)."
)]
pub struct BacktestArgs {
    /// Readings files (`time,value`), one series each (default: the database's series).
    #[arg(value_name = "FILE.csv")]
    pub files: Vec<PathBuf>,
    /// Record each series' winner as its default forecaster, in the database.
    #[arg(long)]
    pub select: bool,
    /// Time zone of the files, and of the country whose holidays are days off (default: the
    /// device's).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
    /// Which origins: every local midnight, or every local Monday.
    #[arg(long, value_enum, default_value = "daily")]
    pub origins: OriginsArg,
    /// Weeks at the end of each series to forecast from (default 8 daily, 52 weekly).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=520))]
    pub weeks: Option<u32>,
    /// Networks to backtest alone, beside the combination (comma separated; `none` for none).
    #[arg(long, value_delimiter = ',', default_value = "lstm", value_parser = ["lstm", "gru", "rnn", "transformer", "none"])]
    pub model: Vec<String>,
    /// Strategies of those networks (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "mimo", value_parser = ["mimo", "direct", "recursive"])]
    pub strategy: Vec<String>,
    /// Hours of input of the networks (the combination's too).
    #[arg(short = 'w', long, default_value_t = 48, value_parser = clap::value_parser!(u32).range(1..=2016))]
    pub window: u32,
    /// Most epochs of the networks.
    #[arg(short = 'e', long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub epochs: u32,
    /// Training loss of the networks.
    #[arg(long, default_value = "l1", value_parser = ["mse", "l1"])]
    pub loss: String,
    /// Seed of the networks' training (another seed shows how much of a score is luck).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print the tables as Markdown.
    #[arg(long)]
    pub markdown: bool,
    /// Fit every forecaster again on all the history before an origin every N days (default:
    /// once with daily origins, 7 with weekly ones).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=366))]
    pub refit_days: Option<u32>,
    /// Score another program's forecasts beside these: DIR holds `<series>.csv` per series, rows
    /// `origin,time,value[,lower,upper]` for every origin of the backtest (see
    /// benches/statsforecast/). Repeatable.
    #[arg(long, value_name = "NAME=DIR")]
    pub external: Vec<String>,
    /// Write every forecaster's forecasts as DIR/<forecaster>/<series>.csv, in the form
    /// --external reads.
    #[arg(long, value_name = "DIR")]
    pub write_forecasts: Option<PathBuf>,
}

/// A forecaster whose fitting shows a progress bar.
struct BarFit(Forecaster, String);

impl Fit for BarFit {
    type Fitted = Fitted;
    fn fit(&self, history: &History) -> Result<Fitted, ForecastError> {
        fit_with_bar(&self.0, history, &self.1)
    }
}

/// The forecasters the options ask for: the baselines, the networks alone, the combination.
fn forecasters(args: &BacktestArgs) -> anyhow::Result<Vec<Forecaster>> {
    let mut networks = Vec::new();
    for m in args.model.iter().filter(|m| *m != "none") {
        for s in &args.strategy {
            let mut config = NeuralConfig::new(
                m.parse().map_err(anyhow::Error::msg)?,
                s.parse().map_err(anyhow::Error::msg)?,
            );
            config.window = args.window as usize;
            config.train.epochs = args.epochs as usize;
            config.train.loss = args.loss.parse().map_err(anyhow::Error::msg)?;
            config.train.seed = args.seed;
            networks.push(config);
        }
    }
    let mut member = Combination::default()
        .network
        .expect("the default combination has a network");
    member.window = args.window as usize;
    member.train.epochs = args.epochs as usize;
    member.train.loss = args.loss.parse().map_err(anyhow::Error::msg)?;
    member.train.seed = args.seed;
    let mut all = Forecaster::baselines();
    all.extend(networks.into_iter().map(Forecaster::Network));
    all.push(Forecaster::Combination(Combination {
        network: Some(member),
        ..Combination::default()
    }));
    Ok(all)
}

/// `--external NAME=DIR`, parsed.
fn externals(args: &BacktestArgs) -> anyhow::Result<Vec<(String, PathBuf)>> {
    args.external
        .iter()
        .map(|e| match e.split_once('=') {
            Some((name, dir)) if !name.is_empty() && !dir.is_empty() => {
                Ok((name.to_string(), PathBuf::from(dir)))
            }
            _ => bail!("--external {e:?}: write NAME=DIR, e.g. statsforecast=peer/"),
        })
        .collect()
}

/// The forecasts of an external program for `series` from `dir`, one per origin of `at`.
fn read_external(
    dir: &Path,
    series: &str,
    history: &History,
    at: &[usize],
) -> anyhow::Result<(Vec<Forecast>, bool)> {
    let path = dir.join(format!("{series}.csv"));
    let rows = hydrowatch_csv::read_forecasts(&path, history.timezone)?;
    let banded = rows.iter().all(|r| r.lower.is_some() && r.upper.is_some());
    let mut by_origin: HashMap<i64, Vec<&hydrowatch_csv::ForecastRow>> = HashMap::new();
    for r in &rows {
        by_origin.entry(r.origin).or_default().push(r);
    }
    let s = &history.series;
    let mut out = Vec::with_capacity(at.len());
    for &o in at {
        let start = s.time(o);
        let local = hydrowatch_core::time::format_local(start, history.timezone);
        let Some(rows) = by_origin.get(&start) else {
            bail!(
                "{}: no forecast from the origin {local} (the file must cover every origin of the backtest)",
                path.display()
            );
        };
        let mut points = vec![f64::NAN; HORIZON];
        let (mut lower, mut upper) = (vec![f64::NAN; HORIZON], vec![f64::NAN; HORIZON]);
        for r in rows {
            let h = (r.time - start) / s.step;
            if (r.time - start) % s.step != 0 || !(0..HORIZON as i64).contains(&h) {
                bail!(
                    "{}, line {}: the time is not one of the 168 hours after its origin {local}",
                    path.display(),
                    r.line
                );
            }
            let h = h as usize;
            points[h] = r.value;
            lower[h] = r.lower.unwrap_or(r.value);
            upper[h] = r.upper.unwrap_or(r.value);
        }
        let have = points.iter().filter(|v| v.is_finite()).count();
        if have != HORIZON {
            bail!(
                "{}: the forecast from {local} has {have} of the {HORIZON} hours",
                path.display()
            );
        }
        out.push(Forecast {
            start,
            step: s.step,
            points,
            lower,
            upper,
            model: String::new(),
        });
    }
    Ok((out, banded))
}

/// Writes `forecasts` as `dir/<series>.csv`, the form `--external` reads.
fn write_forecasts(dir: &Path, series: &str, forecasts: &[Forecast], tz: Tz) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let rows: Vec<hydrowatch_csv::ForecastRow> = forecasts
        .iter()
        .flat_map(|fc| {
            (0..fc.points.len()).map(move |h| hydrowatch_csv::ForecastRow {
                line: 0,
                origin: fc.start,
                time: fc.time(h),
                value: fc.points[h],
                lower: Some(fc.lower[h]),
                upper: Some(fc.upper[h]),
            })
        })
        .collect();
    Ok(hydrowatch_csv::write_forecasts(
        &dir.join(format!("{series}.csv")),
        &rows,
        tz,
    )?)
}

/// One series' backtest: the results in the order of the forecasters, externals last.
struct SeriesResults {
    history: History,
    results: Vec<BacktestResult>,
    /// Whether each result has a band (externals may not).
    banded: Vec<bool>,
}

/// `hydrowatch backtest`
pub fn backtest_cmd(global: &Global, args: BacktestArgs) -> anyhow::Result<()> {
    let ctx = Context::load(global)?;
    let tz = ctx.timezone(args.timezone.as_deref())?;
    let schedule = match args.origins {
        OriginsArg::Daily => Schedule::Daily,
        OriginsArg::Weekly => Schedule::Weekly,
    };
    let weeks = args.weeks.map_or(
        match schedule {
            Schedule::Daily => 8,
            Schedule::Weekly => 52,
        },
        |w| w as usize,
    );
    let refit = args.refit_days.map(|d| d as usize).or(match schedule {
        Schedule::Daily => None,
        Schedule::Weekly => Some(7),
    });
    let forecasters = forecasters(&args)?;
    let externals = externals(&args)?;
    // (series name, history) of each input.
    let mut inputs: Vec<(String, History)> = Vec::new();
    let mut store = None;
    if args.files.is_empty() || args.select {
        anyhow::ensure!(
            !args.files.is_empty() || ctx.db.is_file(),
            "give readings files, or a database with readings ({} does not exist)",
            ctx.db.display()
        );
        store = Some(ctx.open_store()?);
    }
    if args.files.is_empty() {
        let store = store.as_ref().expect("opened above");
        let days_off = holidays(&ctx, store.timezone())?;
        for s in store.series()? {
            inputs.push((s.name.clone(), edge::db_history(store, &s.name, &days_off)?));
        }
        anyhow::ensure!(
            !inputs.is_empty(),
            "{} holds no series yet",
            ctx.db.display()
        );
    }
    let days_off = holidays(&ctx, tz)?;
    for file in &args.files {
        let name = file.file_stem().map_or_else(
            || file.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        let mut history = read_history(file, tz, None)?;
        history.holidays = days_off.clone();
        inputs.push((name, history));
    }
    let mut all: Vec<SeriesResults> = Vec::new();
    for (name, history) in inputs {
        let at = origins(&history, weeks, schedule);
        if at.is_empty() {
            eprintln!(
                "{name}: left out: no origin with 168 hours after it in the last {weeks} weeks"
            );
            continue;
        }
        // Other programs' forecasts are read first: a file that does not fit fails at once.
        let theirs = externals
            .iter()
            .map(|(_, dir)| read_external(dir, &name, &history, &at))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut results = Vec::new();
        let mut banded = Vec::new();
        for f in &forecasters {
            let label = format!("{name} {}", f.name());
            match backtest(&BarFit(f.clone(), label), &history, &at, refit) {
                Ok(mut r) => {
                    r.name = f.name();
                    results.push(r);
                    banded.push(true);
                }
                // A series too short for a forecaster is still scored on the others.
                Err(e) if f.is_trained() => {
                    eprintln!("{name}: {} left out: {e}", f.name());
                }
                Err(e) => return Err(e.into()),
            }
        }
        for (ext, (forecasts, has_band)) in externals.iter().zip(theirs) {
            results.push(external(&ext.0, &history, forecasts));
            banded.push(has_band);
        }
        if let Some(dir) = &args.write_forecasts {
            for r in results.iter().take(results.len() - externals.len()) {
                write_forecasts(
                    &dir.join(r.name.replace('/', "-")),
                    &name,
                    &r.forecasts,
                    history.timezone,
                )?;
            }
        }
        print_table(
            &format!(
                "{name}: {} origins, {}",
                at.len(),
                match schedule {
                    Schedule::Daily => format!("every local midnight of the last {weeks} weeks"),
                    Schedule::Weekly => format!("every local Monday of the last {weeks} weeks"),
                }
            ),
            &results,
            &banded,
            args.markdown,
        );
        if let Some(store) = store.as_mut().filter(|_| args.select) {
            // Other programs' forecasts are shown, not chosen: the device cannot run them.
            let own = &results[..results.len() - externals.len()];
            let best = winner(own).context("no forecaster could be scored")?;
            let id = store.ensure_series(&name, None)?;
            let score = best.scores.pi1 + best.scores.pi3;
            store.set_default_model(id, &best.name, score, chrono::Utc::now().timestamp())?;
            println!(
                "{name}: {} recorded as the default forecaster in {} (PI1 + PI3 = {score:.3})",
                best.name,
                ctx.db.display()
            );
        }
        all.push(SeriesResults {
            history,
            results,
            banded,
        });
    }
    // Series with every forecaster scored are summarised together.
    let full = all.iter().map(|s| s.results.len()).max().unwrap_or(0);
    let complete: Vec<&SeriesResults> = all.iter().filter(|s| s.results.len() == full).collect();
    if complete.len() > 1 {
        let overall: Vec<Vec<Scored>> = complete
            .iter()
            .map(|s| {
                s.results
                    .iter()
                    .map(|r| score(&s.history, &r.forecasts.iter().collect::<Vec<_>>()))
                    .collect()
            })
            .collect();
        print_summary(
            &format!("all origins, mean over {} series", complete.len()),
            &complete,
            &overall,
            args.markdown,
        );
    }
    if complete.len() > 1 && schedule == Schedule::Weekly {
        for season in SEASONS {
            let per_series: Vec<Vec<Scored>> = complete
                .iter()
                .map(|s| {
                    s.results
                        .iter()
                        .map(|r| {
                            score_by_season(&s.history, &r.forecasts)
                                .into_iter()
                                .find(|(name, _)| *name == season)
                                .map_or(EMPTY, |(_, scored)| scored)
                        })
                        .collect()
                })
                .collect();
            if per_series
                .iter()
                .all(|s| s.iter().all(|x| x.forecasts == 0))
            {
                continue;
            }
            print_summary(
                &format!("origins in {season}, mean over {} series", complete.len()),
                &complete,
                &per_series,
                args.markdown,
            );
        }
    }
    Ok(())
}

const EMPTY: Scored = Scored {
    scores: hydrowatch_forecast::Scores {
        pi1: f64::NAN,
        pi2: f64::NAN,
        pi3: f64::NAN,
        rmse: f64::NAN,
        mape: f64::NAN,
    },
    coverage: f64::NAN,
    forecasts: 0,
};

fn print_table(title: &str, rows: &[BacktestResult], banded: &[bool], markdown: bool) {
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

/// Per forecaster: the mean scores over the series (in their unit), the mean of each series'
/// change against seasonal naive (every series weighs the same whatever its flow), and the mean
/// of the series' band coverages.
fn print_summary(title: &str, series: &[&SeriesResults], scored: &[Vec<Scored>], markdown: bool) {
    let Some(first) = series.first() else {
        return;
    };
    let naive = first
        .results
        .iter()
        .position(|r| r.name == "seasonal-naive");
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
    for (i, r) in first.results.iter().enumerate() {
        let mean = |f: &dyn Fn(&Scored) -> f64| {
            let v: Vec<f64> = scored
                .iter()
                .map(|s| f(&s[i]))
                .filter(|x| x.is_finite())
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        let change = |f: &dyn Fn(&Scored) -> f64| -> String {
            let Some(n) = naive else {
                return String::new();
            };
            let v: Vec<f64> = scored
                .iter()
                .map(|s| f(&s[i]) / f(&s[n]) - 1.0)
                .filter(|x| x.is_finite())
                .collect();
            if v.is_empty() {
                return "-".into();
            }
            format!("{:+.1}%", v.iter().sum::<f64>() / v.len() as f64 * 100.0)
        };
        let banded = series.iter().all(|s| s.banded[i]);
        let cov = coverage(mean(&|s| s.coverage), banded);
        let (p1, p2, p3) = (
            change(&|s| s.scores.pi1),
            change(&|s| s.scores.pi2),
            change(&|s| s.scores.pi3),
        );
        let name = &r.name;
        let (pi1, pi2, pi3, rmse, mape) = (
            mean(&|s| s.scores.pi1),
            mean(&|s| s.scores.pi2),
            mean(&|s| s.scores.pi3),
            mean(&|s| s.scores.rmse),
            mean(&|s| s.scores.mape),
        );
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
