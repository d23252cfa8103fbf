//! `hydrowatch train`, `hydrowatch forecast` and `hydrowatch backtest` on CSV files: reading a
//! file into an hourly history, and the three commands over hydrowatch-forecast.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use chrono_tz::Tz;
use clap::Args;
use hydrowatch_core::time::{format_local, hour_phase};
use hydrowatch_csv::{ReadOptions, ReadingsCsv};
use hydrowatch_forecast::backtest::{BacktestResult, backtest_refitted};
use hydrowatch_forecast::baseline::{MstlEts, SeasonalBlend, SeasonalMean, SeasonalNaive};
use hydrowatch_forecast::neural::{EpochLog, FittedNeural, ModelKind, NeuralConfig, Strategy};
use hydrowatch_forecast::{Fit, Forecast, HORIZON, History, Holidays, Predict, Series, artifact};
use indicatif::{ProgressBar, ProgressStyle};

use hydrowatch_edge::forecasting as edge;

use crate::cli::Global;
use crate::context::Context;

/// Options shared by the commands that read a history from a CSV file.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Readings: `time,value` (hourly or minute data; empty values are missing readings), or a
    /// wide file with --series. Without it, the device database (--db) is read.
    #[arg(long, value_name = "FILE.csv")]
    pub input: Option<PathBuf>,
    /// Time zone of times without an offset, and of the calendar (default: the device's).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
    /// Column to read from a wide file (default: the `value` column), or the series of the
    /// database to train on.
    #[arg(long, value_name = "NAME")]
    pub series: Option<String>,
}

impl InputArgs {
    /// The history named by these options: the file's, or the database series'.
    fn history(&self, ctx: &Context) -> anyhow::Result<(History, String)> {
        let tz = ctx.timezone(self.timezone.as_deref())?;
        let (mut history, name) = match &self.input {
            Some(path) => (
                read_history(path, tz, self.series.as_deref())?,
                path.display().to_string(),
            ),
            None => {
                let store = ctx.open_store()?;
                let Some(name) = &self.series else {
                    let names: Vec<String> = store.series()?.into_iter().map(|s| s.name).collect();
                    bail!(
                        "name the input: --input FILE.csv, or --series NAME of the database {} (it has: {})",
                        ctx.db.display(),
                        names.join(", ")
                    );
                };
                (
                    edge::db_history(&store, name, &holidays(ctx))?,
                    format!("{name} in {}", ctx.db.display()),
                )
            }
        };
        history.holidays = holidays(ctx);
        Ok((history, name))
    }
}

/// The configured holidays (`[forecast] holidays`).
fn holidays(ctx: &Context) -> Holidays {
    Holidays(ctx.config.forecast.holidays.clone())
}

/// `hydrowatch train`
#[derive(Debug, Args)]
#[command(
    after_help = "Example (the prototype's options):\n  hydrowatch train --input dma_01.csv --timezone Europe/Rome --model-dir models/dma_01 -w 48 -e 30 -b 64\n\n\
Writes into DIR: model.json (configuration, scaler, band, scores), the weights (net*.bpk), \
loss_history.csv, learning_curve.png and test_forecast.png (the forecasts 1-24 hours ahead over \
the test span against what happened). Training uses the file's windows in time order: 80% to train, 10% to stop \
early, 10% to test; the test scores are printed."
)]
pub struct TrainArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Folder to write the trained model into.
    #[arg(long, value_name = "DIR")]
    pub model_dir: PathBuf,
    /// The network.
    #[arg(long, default_value = "lstm", value_parser = ["lstm", "gru", "rnn", "transformer"])]
    pub model: String,
    /// How the 168 hours are produced.
    #[arg(long, default_value = "mimo", value_parser = ["mimo", "direct", "recursive"])]
    pub strategy: String,
    /// Hours of input the network reads.
    #[arg(short = 'w', long, default_value_t = 48, value_parser = clap::value_parser!(u32).range(1..=2016))]
    pub window: u32,
    /// Hours forecast (the device forecasts 168; kept for the prototype's scripts).
    #[arg(short = 'p', long, default_value_t = 168)]
    pub horizon: usize,
    /// Most epochs (training stops earlier when validation stops improving).
    #[arg(short = 'e', long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub epochs: u32,
    /// Windows per mini-batch.
    #[arg(short = 'b', long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub batch: u32,
    /// The original prototype's network: 2 LSTM layers of 50 units, SGD (lr 0.01, momentum 0.9).
    #[arg(long, conflicts_with_all = ["model", "tune", "loss"])]
    pub prototype: bool,
    /// Try a few sizes and windows; keep the best on validation.
    #[arg(long)]
    pub tune: bool,
    /// Seed: the same seed and data give the same model.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// What training minimises: l1 (absolute error, what PI1 and PI3 score) or mse (squared
    /// error, the prototype's). --prototype always uses mse.
    #[arg(long, default_value = "l1", value_parser = ["mse", "l1"])]
    pub loss: String,
}

/// `hydrowatch forecast`
#[derive(Debug, Args)]
#[command(
    after_help = "Writes 168 rows `time,value,lower,upper` for the hours after the last complete hour of \
FILE, times in its time zone as `YYYY-MM-DD HH:MM`; lower and upper are the 10% and 90% band. \
With --model-dir the trained model forecasts from the history in FILE without retraining; \
without it the default model is trained on FILE first, or, when FILE is too short for it, the \
better of the baselines is used. The output says which. An output name ending in .json gives JSON."
)]
pub struct ForecastArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// A folder written by `hydrowatch train`. Without --input: the folder of per-series model
    /// folders (default: `models` beside the database).
    #[arg(long, value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
    /// Where to write the forecast (.csv or .json); needed with --input.
    #[arg(long, value_name = "OUT.csv")]
    pub output: Option<PathBuf>,
}

/// `hydrowatch backtest`
#[derive(Debug, Args)]
#[command(
    after_help = "Example (the 10 DMAs of the Battle of Water Demand Forecasting):\n  \
hydrowatch backtest --timezone Europe/Rome --markdown shared/data/dma-inflow/dma_*.csv\n\n\
Each forecaster is fitted once on the history before the last K weeks, then forecasts 168 hours \
from every midnight of those weeks using only the history before it. PI1 = mean absolute error \
of hours 1-24, PI2 = largest absolute error of hours 1-24, PI3 = mean absolute error of hours \
25-168 (in the series' unit); MAPE in %.\n\n\
Without files, every series of the device database is backtested. --select records each series' \
winner (the single forecaster with the lowest PI1 + PI3) as its default: `hydrowatch forecast` on \
the database then uses it (a file's series is named by the file's stem)."
)]
pub struct BacktestArgs {
    /// Readings files (`time,value`), one series each (default: the database's series).
    #[arg(value_name = "FILE.csv")]
    pub files: Vec<PathBuf>,
    /// Record each series' winner as its default forecaster, in the database.
    #[arg(long)]
    pub select: bool,
    /// Time zone of the files (default: the device's).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
    /// Weeks at the end of each file to forecast.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=520))]
    pub weeks: u32,
    /// Networks to include (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "lstm", value_parser = ["lstm", "gru", "rnn", "transformer"])]
    pub model: Vec<String>,
    /// Strategies to include (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "mimo", value_parser = ["mimo", "direct", "recursive"])]
    pub strategy: Vec<String>,
    /// Hours of input of the networks.
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
    /// Fit every forecaster again on all the history before every N-th origin (7: as a device
    /// that retrains weekly); without it, each is fitted once before the backtest weeks.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=366))]
    pub refit_days: Option<u32>,
}

/// Reads a CSV into an hourly history in `tz`; the last hour is dropped when the readings are
/// finer than hourly and it is incomplete.
pub fn read_history(path: &Path, tz: Tz, series: Option<&str>) -> anyhow::Result<History> {
    let options = ReadOptions {
        timezone: tz,
        series: Some(series.unwrap_or("value").to_string()),
    };
    let mut file = ReadingsCsv::open(path, &options)?;
    let mut points = Vec::new();
    while let Some(row) = file.next_row() {
        let row = row?;
        if let Some(v) = row.values[0] {
            points.push((row.ts, v));
        }
    }
    if points.is_empty() {
        bail!("{}: no readings", path.display());
    }
    let mut series = Series::resample(&points, 3600, hour_phase(tz))?;
    // The interval of the readings: the most common gap between consecutive ones.
    let mut gaps: Vec<i64> = points
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .filter(|d| *d > 0)
        .collect();
    gaps.sort_unstable();
    let interval = gaps.get(gaps.len() / 2).copied().unwrap_or(3600);
    if interval < 3600 {
        let last_hour = series.time(series.values.len() - 1);
        let in_last = points.iter().filter(|(t, _)| *t >= last_hour).count() as i64;
        if in_last < 3600 / interval {
            series.values.pop();
        }
    }
    Ok(History {
        series,
        timezone: tz,
        holidays: Holidays::default(),
    })
}

fn neural_config(args: &TrainArgs) -> anyhow::Result<NeuralConfig> {
    let strategy: Strategy = args.strategy.parse().map_err(anyhow::Error::msg)?;
    let mut config = if args.prototype {
        NeuralConfig {
            strategy,
            ..NeuralConfig::prototype()
        }
    } else {
        let kind: ModelKind = args.model.parse().map_err(anyhow::Error::msg)?;
        let mut config = NeuralConfig::new(kind, strategy);
        config.train.loss = args.loss.parse().map_err(anyhow::Error::msg)?;
        config
    };
    config.window = args.window as usize;
    config.train.epochs = args.epochs as usize;
    config.train.batch = args.batch as usize;
    config.train.seed = args.seed;
    Ok(config)
}

/// Trains with a progress bar per epoch.
fn fit_with_bar(
    config: &NeuralConfig,
    history: &History,
    label: &str,
) -> anyhow::Result<FittedNeural> {
    let (_, nets) = config.strategy.layout();
    let bar = ProgressBar::new((config.train.epochs * nets) as u64).with_style(
        ProgressStyle::with_template("{prefix} [{bar:25}] {pos}/{len} epochs {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    let fitted = config.fit_with_progress(history, |net, e: &EpochLog| {
        bar.set_position((net * config.train.epochs + e.epoch) as u64);
        bar.set_message(format!(
            "net {}: train {:.5} val {:.5} lr {:.1e}",
            net + 1,
            e.train_loss,
            e.val_loss,
            e.learning_rate
        ));
    })?;
    bar.finish_and_clear();
    Ok(fitted)
}

/// `hydrowatch train`
pub fn train(global: &Global, args: TrainArgs) -> anyhow::Result<()> {
    let ctx = Context::load(global)?;
    if args.horizon != HORIZON {
        bail!(
            "-p {}: hydrowatch models forecast {HORIZON} hours (7 days); leave -p out or give 168",
            args.horizon
        );
    }
    let tz = ctx.timezone(args.input.timezone.as_deref())?;
    let (history, source) = args.input.history(&ctx)?;
    let base = neural_config(&args)?;
    let candidates: Vec<NeuralConfig> = if args.tune {
        let mut c = Vec::new();
        for window in [24, 48, 168] {
            for units in [32, 64] {
                c.push(NeuralConfig {
                    window,
                    units,
                    ..base.clone()
                });
            }
        }
        c
    } else {
        vec![base]
    };
    let mut best: Option<FittedNeural> = None;
    for (i, config) in candidates.iter().enumerate() {
        let label = if candidates.len() > 1 {
            format!(
                "{} w={} units={} ({}/{})",
                config.name(),
                config.window,
                config.units,
                i + 1,
                candidates.len()
            )
        } else {
            config.name()
        };
        let fitted = fit_with_bar(config, &history, &label)?;
        let v = fitted.report.validation;
        if candidates.len() > 1 {
            println!("{label}: validation PI1 {:.3} PI3 {:.3}", v.pi1, v.pi3);
        }
        let score = |f: &FittedNeural| f.report.validation.pi1 + f.report.validation.pi3;
        if best.as_ref().is_none_or(|b| score(&fitted) < score(b)) {
            best = Some(fitted);
        }
    }
    let fitted = best.expect("at least one candidate");
    let context = artifact::Context {
        step: 3600,
        timezone: tz,
        holidays: history.holidays.clone(),
    };
    artifact::save(&fitted, &context, &args.model_dir)?;
    let losses = args.model_dir.join("loss_history.csv");
    edge::write_loss_history(&fitted, &losses)
        .with_context(|| format!("cannot write {}", losses.display()))?;
    let title = format!(
        "{} ({} epochs, batch {})",
        fitted.name(),
        fitted.report.epochs.iter().max().unwrap_or(&0),
        fitted.config.train.batch
    );
    crate::plot::learning_curve(
        &fitted.log,
        &format!("learning curve: {title}"),
        &args.model_dir.join("learning_curve.png"),
    )?;
    plot_test_span(
        &fitted,
        &history,
        &title,
        &args.model_dir.join("test_forecast.png"),
    )?;

    let r = &fitted.report;
    println!(
        "trained {} (window {} h, {} units) on {} hours of {} in {:.1} s: {} training, {} validation, {} test windows; epochs {:?}",
        fitted.name(),
        fitted.config.window,
        fitted.config.units,
        history.series.values.len(),
        source,
        r.seconds,
        r.windows[0],
        r.windows[1],
        r.windows[2],
        r.epochs
    );
    if !r.network_days.is_empty() {
        let days: Vec<&str> = r
            .network_days
            .iter()
            .enumerate()
            .map(|(day, n)| match (n, day) {
                (false, _) => "blend",
                (true, 0) => "network",
                (true, _) => "network+blend",
            })
            .collect();
        println!(
            "day by day (the network where it beat the seasonal blend on validation; after day 1 half each): {}",
            days.join(", ")
        );
    }
    println!(
        "validation: PI1 {:.3}  PI2 {:.3}  PI3 {:.3}  RMSE {:.3}  MAPE {:.1}%",
        r.validation.pi1, r.validation.pi2, r.validation.pi3, r.validation.rmse, r.validation.mape
    );
    if let Some(t) = r.test {
        println!(
            "test:       PI1 {:.3}  PI2 {:.3}  PI3 {:.3}  RMSE {:.3}  MAPE {:.1}%",
            t.pi1, t.pi2, t.pi3, t.rmse, t.mape
        );
    }
    println!("model written to {}", args.model_dir.display());
    Ok(())
}

/// The day-ahead forecasts (hours 1-24 of each midnight's forecast) over the test span against
/// the actual values, each forecast hour drawn at the hour it forecasts.
fn plot_test_span(
    model: &FittedNeural,
    history: &History,
    title: &str,
    path: &Path,
) -> anyhow::Result<()> {
    let s = &history.series;
    let from = ((model.report.test_from - s.start) / s.step).max(0) as usize;
    let n = s.values.len();
    let (mut times, mut actual, mut forecast, mut lower, mut upper) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut o = from;
    while o + 24 <= n {
        let fc = match model.predict(&history.until(o)) {
            Ok(fc) => Some(fc),
            Err(hydrowatch_forecast::ForecastError::Input(_)) => None,
            Err(e) => return Err(e.into()),
        };
        for h in 0..24 {
            times.push(s.time(o + h));
            actual.push(s.values[o + h]);
            forecast.push(fc.as_ref().map_or(f64::NAN, |f| f.points[h]));
            lower.push(fc.as_ref().map_or(f64::NAN, |f| f.lower[h]));
            upper.push(fc.as_ref().map_or(f64::NAN, |f| f.upper[h]));
        }
        o += 24;
    }
    if times.is_empty() {
        return Ok(());
    }
    let errs: Vec<f64> = actual
        .iter()
        .zip(&forecast)
        .map(|(a, f)| a - f)
        .filter(|e| e.is_finite())
        .collect();
    let rmse = (errs.iter().map(|e| e * e).sum::<f64>() / errs.len().max(1) as f64).sqrt();
    crate::plot::time_plot(
        &times,
        &[
            crate::plot::Line {
                label: "actual",
                values: &actual,
                color: plotters::style::BLACK,
            },
            crate::plot::Line {
                label: "forecast, 1-24 h ahead",
                values: &forecast,
                color: plotters::style::RED,
            },
        ],
        Some((&lower, &upper)),
        history.timezone,
        &format!("test span: {title}, RMSE {rmse:.3}"),
        "hourly mean",
        path,
    )
}

/// `hydrowatch forecast`
pub fn forecast(global: &Global, args: ForecastArgs) -> anyhow::Result<()> {
    let ctx = Context::load(global)?;
    if args.input.input.is_none() {
        return forecast_database(&ctx, &args);
    }
    let Some(output) = &args.output else {
        bail!(
            "--output OUT.csv is needed with --input (the forecast of a file is written to a file)"
        );
    };
    let tz = ctx.timezone(args.input.timezone.as_deref())?;
    let (mut history, _) = args.input.history(&ctx)?;
    let (fc, note) = match &args.model_dir {
        Some(dir) => {
            let (model, context) = artifact::load(dir)?;
            if context.step != history.series.step {
                bail!(
                    "{}: the model forecasts intervals of {} s, the input has {} s",
                    dir.display(),
                    context.step,
                    history.series.step
                );
            }
            history.timezone = context.timezone;
            history.holidays = context.holidays;
            (
                model.predict(&history)?,
                format!("trained model {} from {}", model.name(), dir.display()),
            )
        }
        None => match train_default(&history) {
            Ok(model) => (
                model.predict(&history)?,
                format!("default model {} trained on the input", model.name()),
            ),
            Err(e) => edge::baseline_forecast(&history, &format!("{e:#}"))?,
        },
    };
    write_forecast(&fc, tz, output)?;
    println!(
        "wrote {} hours from {} to {} ({note})",
        fc.points.len(),
        format_local(fc.start, tz),
        output.display()
    );
    Ok(())
}

/// Forecasts every series of the database with its forecaster (see
/// [`edge::forecast_series`]; networks saved in `MODELS/<series>`), and stores each forecast.
fn forecast_database(ctx: &Context, args: &ForecastArgs) -> anyhow::Result<()> {
    let mut store = ctx.open_store()?;
    let tz = store.timezone();
    let models = args
        .model_dir
        .clone()
        .unwrap_or_else(|| ctx.db.parent().unwrap_or(Path::new(".")).join("models"));
    let series = store.series()?;
    if series.is_empty() {
        bail!(
            "{} holds no series yet: import or record readings first",
            ctx.db.display()
        );
    }
    let train = |config: &NeuralConfig, history: &History| {
        fit_with_bar(config, history, &config.name())
            .map_err(|e| hydrowatch_forecast::ForecastError::Input(format!("{e:#}")))
    };
    for s in series {
        let made = edge::forecast_series(&store, &s, &models, &holidays(ctx), &train)
            .with_context(|| format!("series {}", s.name))?;
        let fc = &made.forecast;
        let points = edge::points(fc);
        store.insert_forecast(s.id, fc.start, None, &points)?;
        println!(
            "{}: {} hours from {} stored ({})",
            s.name,
            points.len(),
            format_local(fc.start, tz),
            made.note
        );
    }
    Ok(())
}

/// Trains the default model, with a progress bar.
fn train_default(history: &History) -> anyhow::Result<FittedNeural> {
    let config = NeuralConfig::new(ModelKind::Lstm, Strategy::Mimo);
    fit_with_bar(&config, history, &config.name())
}

fn write_forecast(fc: &Forecast, tz: Tz, path: &Path) -> anyhow::Result<()> {
    let mut out = BufWriter::new(
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        serde_json::to_writer_pretty(&mut out, fc)?;
    } else {
        edge::write_csv(fc, tz, &mut out)?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `hydrowatch backtest`
pub fn backtest_cmd(global: &Global, args: BacktestArgs) -> anyhow::Result<()> {
    let ctx = Context::load(global)?;
    let tz = ctx.timezone(args.timezone.as_deref())?;
    let weeks = args.weeks as usize;
    let mut configs = Vec::new();
    for m in &args.model {
        for s in &args.strategy {
            let mut config = NeuralConfig::new(
                m.parse().map_err(anyhow::Error::msg)?,
                s.parse().map_err(anyhow::Error::msg)?,
            );
            config.window = args.window as usize;
            config.train.epochs = args.epochs as usize;
            config.train.loss = args.loss.parse().map_err(anyhow::Error::msg)?;
            config.train.seed = args.seed;
            configs.push(config);
        }
    }
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
        for s in store.series()? {
            inputs.push((
                s.name.clone(),
                edge::db_history(store, &s.name, &holidays(&ctx))?,
            ));
        }
        anyhow::ensure!(
            !inputs.is_empty(),
            "{} holds no series yet",
            ctx.db.display()
        );
    }
    for file in &args.files {
        let name = file.file_stem().map_or_else(
            || file.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        inputs.push((name, read_history(file, tz, None)?));
    }
    let mut all: Vec<(String, Vec<BacktestResult>)> = Vec::new();
    for (name, mut history) in inputs {
        history.holidays = holidays(&ctx);
        let refit = args.refit_days.map(|d| d as usize);
        let mstl = backtest_refitted(&MstlEts::default(), &history, weeks, refit)?;
        let mut results = vec![
            backtest_refitted(&SeasonalNaive, &history, weeks, refit)?,
            backtest_refitted(&SeasonalMean::default(), &history, weeks, refit)?,
            backtest_refitted(&SeasonalBlend, &history, weeks, refit)?,
            mstl.clone(),
        ];
        for config in &configs {
            // Fitting happens inside backtest; its progress bar is the training's.
            let mut r = match backtest_refitted(
                &BarFit(config.clone(), format!("{name} {}", config.name())),
                &history,
                weeks,
                refit,
            ) {
                Ok(r) => r,
                // A series too short for a network is still scored on the baselines.
                Err(e) => {
                    eprintln!("{name}: {} left out: {e}", config.name());
                    continue;
                }
            };
            r.name = config.name();
            // The model averaged with a baseline, origin by origin: no extra fitting.
            let averaged = |other: &BacktestResult| {
                let mean: Vec<Vec<f64>> = r
                    .forecasts
                    .iter()
                    .zip(&other.forecasts)
                    .map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x + y) / 2.0).collect())
                    .collect();
                BacktestResult {
                    name: format!("{} + {}", r.name, other.name),
                    scores: hydrowatch_forecast::backtest::score(&history, weeks, &mean),
                    fit_seconds: r.fit_seconds + other.fit_seconds,
                    predict_seconds: r.predict_seconds + other.predict_seconds,
                    forecasts: Vec::new(),
                    ..r.clone()
                }
            };
            let with_mstl = averaged(&mstl);
            let with_blend = averaged(&results[2]);
            results.push(r);
            results.push(with_mstl);
            results.push(with_blend);
        }
        print_table(
            &format!("{name}: last {weeks} weeks"),
            &results,
            args.markdown,
        );
        if let Some(store) = store.as_mut().filter(|_| args.select) {
            // Averages of two forecasters are shown, not chosen: a default is one forecaster.
            let winner = results
                .iter()
                .filter(|r| !r.name.contains(" + "))
                .min_by(|a, b| {
                    (a.scores.pi1 + a.scores.pi3).total_cmp(&(b.scores.pi1 + b.scores.pi3))
                })
                .expect("the baselines are always there");
            let id = store.ensure_series(&name, None)?;
            let score = winner.scores.pi1 + winner.scores.pi3;
            store.set_default_model(id, &winner.name, score, chrono::Utc::now().timestamp())?;
            println!(
                "{name}: {} recorded as the default forecaster in {} (PI1 + PI3 = {score:.3})",
                winner.name,
                ctx.db.display()
            );
        }
        all.push((name, results));
    }
    if all.len() > 1 {
        let names: Vec<String> = all[0].1.iter().map(|r| r.name.clone()).collect();
        let mean: Vec<BacktestResult> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let rows: Vec<&BacktestResult> = all.iter().map(|(_, r)| &r[i]).collect();
                let n = rows.len() as f64;
                BacktestResult {
                    name: name.clone(),
                    scores: hydrowatch_forecast::Scores::mean(
                        &rows.iter().map(|r| r.scores).collect::<Vec<_>>(),
                    ),
                    origins: rows.iter().map(|r| r.origins).sum(),
                    fallbacks: rows.iter().map(|r| r.fallbacks).sum(),
                    fit_seconds: rows.iter().map(|r| r.fit_seconds).sum::<f64>() / n,
                    predict_seconds: rows.iter().map(|r| r.predict_seconds).sum::<f64>() / n,
                    forecasts: Vec::new(),
                }
            })
            .collect();
        print_table(
            &format!("mean over {} series", all.len()),
            &mean,
            args.markdown,
        );
        print_relative(&all, args.markdown);
    }
    Ok(())
}

/// A neural configuration whose fitting shows a progress bar.
struct BarFit(NeuralConfig, String);

impl Fit for BarFit {
    type Fitted = FittedNeural;
    fn fit(&self, history: &History) -> Result<FittedNeural, hydrowatch_forecast::ForecastError> {
        fit_with_bar(&self.0, history, &self.1)
            .map_err(|e| hydrowatch_forecast::ForecastError::Input(format!("{e:#}")))
    }
}

fn print_table(title: &str, rows: &[BacktestResult], markdown: bool) {
    let naive = rows
        .iter()
        .find(|r| r.name == "seasonal-naive")
        .map(|r| r.scores);
    println!();
    if markdown {
        println!("**{title}**\n");
        println!(
            "| forecaster | PI1 | PI2 | PI3 | RMSE | MAPE % | PI1 vs naive | PI3 vs naive | fit s | forecast ms | forecasts (by seasonal blend) |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    } else {
        println!("{title}");
        println!(
            "{:<28} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>7} {:>9} {:>10}",
            "forecaster",
            "PI1",
            "PI2",
            "PI3",
            "RMSE",
            "MAPE%",
            "PI1/naive",
            "PI3/naive",
            "fit s",
            "fcst ms",
            "by blend"
        );
    }
    for r in rows {
        let s = r.scores;
        let (g1, g3) = naive.map_or((String::new(), String::new()), |n| {
            (pct(s.pi1, n.pi1), pct(s.pi3, n.pi3))
        });
        if markdown {
            println!(
                "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {g1} | {g3} | {:.1} | {:.1} | {} ({}) |",
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
                "{:<28} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>7.1} {:>9} {:>9} {:>7.1} {:>9.1} {:>4}/{:<5}",
                r.name,
                s.pi1,
                s.pi2,
                s.pi3,
                s.rmse,
                s.mape,
                g1,
                g3,
                r.fit_seconds,
                r.predict_seconds * 1e3,
                r.fallbacks,
                r.origins
            );
        }
    }
}

/// Per forecaster, the change of PI1 and PI3 against seasonal naive of each series, averaged
/// over the series: every series weighs the same whatever its flow.
fn print_relative(all: &[(String, Vec<BacktestResult>)], markdown: bool) {
    let Some((_, first)) = all.first() else {
        return;
    };
    println!();
    if markdown {
        println!(
            "**mean over {} series of each series' change against seasonal naive**\n",
            all.len()
        );
        println!("| forecaster | PI1 | PI3 |");
        println!("| --- | --- | --- |");
    } else {
        println!(
            "mean over {} series of each series' change against seasonal naive",
            all.len()
        );
    }
    for (i, row) in first.iter().enumerate() {
        let change = |f: fn(&hydrowatch_forecast::Scores) -> f64| {
            let v: Vec<f64> = all
                .iter()
                .filter_map(|(_, r)| {
                    let naive = r.iter().find(|x| x.name == "seasonal-naive")?;
                    let c = f(&r[i].scores) / f(&naive.scores) - 1.0;
                    c.is_finite().then_some(c)
                })
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64 * 100.0
        };
        let (c1, c3) = (change(|s| s.pi1), change(|s| s.pi3));
        if markdown {
            println!("| {} | {c1:+.1}% | {c3:+.1}% |", row.name);
        } else {
            println!("{:<28} PI1 {c1:+6.1}%  PI3 {c3:+6.1}%", row.name);
        }
    }
}

/// `x` relative to `base`, as a signed percentage.
fn pct(x: f64, base: f64) -> String {
    format!("{:+.1}%", (x / base - 1.0) * 100.0)
}

/// `hydrowatch bench lstm-step`: burn's step time, and Keras's in the same run when asked.
pub fn bench_lstm_step(args: crate::cli::LstmStepArgs) -> anyhow::Result<()> {
    use hydrowatch_forecast::bench::{Layer, train_step_ms};
    let step = |layer| train_step_ms(layer, args.batch, args.seq, args.hidden, args.steps);
    let (fused_ms, stock_ms) = (step(Layer::FusedLstm), step(Layer::StockLstm));
    println!(
        "batch={} seq={} hidden={}, mean of {} steps after one warm-up:",
        args.batch, args.seq, args.hidden, args.steps
    );
    println!("burn 0.22.1 nn::Lstm (flex CPU): {stock_ms:.1} ms per training step");
    println!("hydrowatch fused LSTM (flex CPU): {fused_ms:.1} ms per training step");
    println!(
        "ratio stock / fused: {:.2} (the fused cell is that many times faster)",
        stock_ms / fused_ms
    );
    let (fused_gru, stock_gru) = (step(Layer::FusedGru), step(Layer::StockGru));
    println!(
        "GRU, same configuration: burn nn::Gru {stock_gru:.1} ms, hydrowatch fused GRU {fused_gru:.1} ms (ratio {:.2})",
        stock_gru / fused_gru
    );
    if let Some(python) = &args.python {
        let out = std::process::Command::new(python)
            .arg(&args.keras_script)
            .env("SEQ", args.seq.to_string())
            .env("BATCH", args.batch.to_string())
            .env("HIDDEN", args.hidden.to_string())
            .env("STEPS", args.steps.to_string())
            .output()
            .with_context(|| format!("cannot run {}", python.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.contains("ms")).with_context(|| {
            format!(
                "the Keras script printed no timing: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        let keras_ms: f64 = line
            .rsplit(':')
            .next()
            .and_then(|t| t.trim().trim_end_matches("ms").trim().parse().ok())
            .with_context(|| format!("cannot read the Keras timing from {line:?}"))?;
        println!("{line}");
        println!(
            "ratio Keras / fused: {:.2} (above 1: hydrowatch is faster than Keras)",
            keras_ms / fused_ms
        );
        println!(
            "ratio Keras / stock: {:.2} (burn's own nn::Lstm)",
            keras_ms / stock_ms
        );
    }
    Ok(())
}
