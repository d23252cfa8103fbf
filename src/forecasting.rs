//! `hydrowatch train` and `hydrowatch forecast`, on CSV files or the device database: reading a
//! file into an hourly history, fitting with a progress bar, the commands over
//! hydrowatch-forecast's registry of forecasters and hydrowatch-edge's database path.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use chrono_tz::Tz;
use clap::Args;
use hydrowatch_core::time::{format_local, hour_phase};
use hydrowatch_csv::{ReadOptions, ReadingsCsv};
use hydrowatch_forecast::clock::day_starts;
use hydrowatch_forecast::combination::Combination;
use hydrowatch_forecast::forecaster::best_baseline;
use hydrowatch_forecast::neural::{EpochLog, ModelKind, NeuralConfig, Strategy};
use hydrowatch_forecast::{
    Fit, Fitted, Forecast, ForecastError, Forecaster, HORIZON, History, Holidays, Predict, Series,
    artifact,
};
use indicatif::{ProgressBar, ProgressStyle};

use hydrowatch_ops::forecasting::{self as edge, Recorded};

use crate::cli::Global;
use crate::context::Context;
use crate::output::Output;

/// Options shared by the commands that read a history from a CSV file.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Readings: `time,value` (hourly or minute data; empty values are missing readings), or a
    /// wide file with --series. Without it, the device database (--db) is read.
    #[arg(long, value_name = "FILE.csv")]
    pub input: Option<PathBuf>,
    /// Time zone of times without an offset, of the calendar, and of the country whose public
    /// holidays are days off (default: the device's).
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
        let holidays = holidays(ctx, tz)?;
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
                    edge::db_history(&store, name, &holidays)?,
                    format!("{name} in {}", ctx.db.display()),
                )
            }
        };
        history.holidays = holidays;
        Ok((history, name))
    }
}

/// The days off in `tz`: the national holidays of its country (or `[forecast] country`) and
/// the listed ones.
pub fn holidays(ctx: &Context, tz: Tz) -> anyhow::Result<Holidays> {
    Ok(edge::calendar(&ctx.config, tz)?.holidays)
}

/// `hydrowatch train`
#[derive(Debug, Args)]
#[command(
    after_help = "Example (the prototype's options):\n  hydrowatch train --input dma_01.csv --timezone Europe/Rome --model-dir models/dma_01 -w 48 -e 30 -b 64\n\n\
The default model is the combination: the seasonal blend, MSTL+ETS and an LSTM, each day ahead \
weighted by how well each forecast the last 4 weeks (the network is trained on the history \
before them). --model lstm|gru|rnn|transformer trains a network alone. Writes into DIR: \
combination.json (members, weights, band) and network/ for a combination, model.json and the \
weights (net*.bpk) for a network, with loss_history.csv, learning_curve.png and \
test_forecast.png (the forecasts 1-24 hours ahead over the weeks no choice was made on, against \
what happened). A network uses the file's windows in time order: 80% to train, 10% to stop \
early, 10% to test; the scores are printed."
)]
pub struct TrainArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Folder to write the trained model into.
    #[arg(long, value_name = "DIR")]
    pub model_dir: PathBuf,
    /// The model: the combination (default), or a network alone (the combination's network is
    /// an LSTM, shaped by the options below).
    #[arg(long, default_value = "combination", value_parser = ["combination", "lstm", "gru", "rnn", "transformer"])]
    pub model: String,
    /// How a network produces the 168 hours.
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
    /// The original prototype's network alone: 2 LSTM layers of 50 units, SGD (lr 0.01,
    /// momentum 0.9).
    #[arg(long, conflicts_with_all = ["model", "tune", "loss"])]
    pub prototype: bool,
    /// Try a few sizes and windows of a network alone; keep the best on validation.
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
without it the default model (the combination) is fitted on FILE first, or, when FILE is too \
short for it, the best of the baselines is used. The output says which. An output name ending \
in .json gives JSON.\n\n\
Without --input, every series of the device database is forecast with its model (trained and \
saved under --model-dir when missing), stored, and queued for the central server exactly as \
the daemon's daily forecast job does."
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

/// Reads a CSV into an hourly history in `tz`; the last hour is dropped when the readings are
/// finer than hourly and it is incomplete.
pub fn read_history(path: &Path, tz: Tz, series: Option<&str>) -> anyhow::Result<History> {
    let options = ReadOptions {
        timezone: tz,
        series: Some(series.unwrap_or("value").to_string()),
        clock: None,
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

/// The network configuration the options describe (the combination's network member, or a
/// network alone).
fn neural_config(args: &TrainArgs) -> anyhow::Result<NeuralConfig> {
    let strategy: Strategy = args.strategy.parse().map_err(anyhow::Error::msg)?;
    let mut config = if args.prototype {
        NeuralConfig {
            strategy,
            ..NeuralConfig::prototype()
        }
    } else {
        let kind = match args.model.as_str() {
            "combination" => ModelKind::Lstm,
            other => other.parse().map_err(anyhow::Error::msg)?,
        };
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

/// The network a forecaster trains, if any.
fn network(forecaster: &Forecaster) -> Option<&NeuralConfig> {
    match forecaster {
        Forecaster::Network(c) => Some(c),
        Forecaster::Combination(c) => c.network.as_ref(),
        _ => None,
    }
}

/// Fits `forecaster`, with a progress bar while its network trains.
pub fn fit_with_bar(
    forecaster: &Forecaster,
    history: &History,
    label: &str,
) -> Result<Fitted, ForecastError> {
    let Some(config) = network(forecaster) else {
        return forecaster.fit(history);
    };
    let (_, nets) = config.strategy.layout();
    let epochs = config.train.epochs;
    let bar = ProgressBar::new((epochs * nets) as u64).with_style(
        ProgressStyle::with_template("{prefix} [{bar:25}] {pos}/{len} epochs {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    let fitted = forecaster.fit_with_progress(history, |net, e: &EpochLog| {
        bar.set_position((net * epochs + e.epoch) as u64);
        bar.set_message(format!(
            "net {}: train {:.5} val {:.5} lr {:.1e}",
            net + 1,
            e.train_loss,
            e.val_loss,
            e.learning_rate
        ));
    });
    bar.finish_and_clear();
    fitted
}

/// The forecaster `hydrowatch train` fits: candidates (several with --tune).
fn train_candidates(args: &TrainArgs) -> anyhow::Result<Vec<Forecaster>> {
    let base = neural_config(args)?;
    if args.model == "combination" && !args.prototype {
        if args.tune {
            bail!(
                "--tune tries sizes of a network alone: give --model lstm (or gru, rnn, transformer)"
            );
        }
        return Ok(vec![Forecaster::Combination(Combination {
            network: Some(base),
            ..Combination::default()
        })]);
    }
    if !args.tune {
        return Ok(vec![Forecaster::Network(base)]);
    }
    let mut c = Vec::new();
    for window in [24, 48, 168] {
        for units in [32, 64] {
            c.push(Forecaster::Network(NeuralConfig {
                window,
                units,
                ..base.clone()
            }));
        }
    }
    Ok(c)
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
    let (history, source) = args.input.history(&ctx)?;
    let candidates = train_candidates(&args)?;
    let mut best: Option<(f64, Fitted)> = None;
    for (i, candidate) in candidates.iter().enumerate() {
        let label = match (candidates.len(), network(candidate)) {
            (1, _) | (_, None) => candidate.name(),
            (n, Some(c)) => format!(
                "{} w={} units={} ({}/{n})",
                candidate.name(),
                c.window,
                c.units,
                i + 1
            ),
        };
        let fitted = fit_with_bar(candidate, &history, &label)?;
        let score = match &fitted {
            Fitted::Network(n) => n.report.validation.pi1 + n.report.validation.pi3,
            _ => 0.0,
        };
        if candidates.len() > 1 {
            println!("{label}: validation PI1 + PI3 {score:.3}");
        }
        if best.as_ref().is_none_or(|(b, _)| score < *b) {
            best = Some((score, fitted));
        }
    }
    let (_, fitted) = best.expect("at least one candidate");
    edge::save_model(&fitted, &history, &args.model_dir)?;
    println!(
        "fitted {} on {} hours of {source}",
        fitted.name(),
        history.series.values.len()
    );
    let from = match &fitted {
        Fitted::Combination(c) => {
            print_combination(c, history.timezone);
            c.report.from
        }
        _ => 0,
    };
    if let Some((net, folder)) = edge::network_of(&fitted, &args.model_dir) {
        let title = format!(
            "{} ({} epochs, batch {})",
            net.name(),
            net.report.epochs.iter().max().unwrap_or(&0),
            net.config.train.batch
        );
        crate::plot::learning_curve(
            &net.log,
            &format!("learning curve: {title}"),
            &folder.join("learning_curve.png"),
        )?;
        let r = &net.report;
        println!(
            "trained {} (window {} h, {} units) on {} hours of {} in {:.1} s: {} training, {} validation, {} test windows; epochs {:?}",
            net.name(),
            net.config.window,
            net.config.units,
            (r.to - r.from) / 3600,
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
            r.validation.pi1,
            r.validation.pi2,
            r.validation.pi3,
            r.validation.rmse,
            r.validation.mape
        );
        if let Some(t) = r.test {
            println!(
                "test:       PI1 {:.3}  PI2 {:.3}  PI3 {:.3}  RMSE {:.3}  MAPE {:.1}%",
                t.pi1, t.pi2, t.pi3, t.rmse, t.mape
            );
        }
    }
    let from = match &fitted {
        Fitted::Network(n) => n.report.test_from,
        _ => from,
    };
    let title = fitted.name();
    plot_recent(
        &fitted,
        &history,
        from,
        &title,
        &args.model_dir.join("test_forecast.png"),
    )?;
    println!("model written to {}", args.model_dir.display());
    Ok(())
}

/// The combination's members, weights and errors, day by day.
fn print_combination(c: &hydrowatch_forecast::combination::FittedCombination, tz: Tz) {
    let r = &c.report;
    println!(
        "combination of {} fitted on the forecasts from {} local midnights, {} to {}",
        c.members.join(", "),
        r.origins,
        format_local(r.from, tz),
        format_local(r.to, tz)
    );
    if let Some(why) = &r.without_network {
        println!("without a network: {why}");
    }
    println!(
        "its 10-90% band: the residuals of those forecasts, widened {:.2}x (what this series' last weeks asked for)",
        r.widening
    );
    let header: Vec<String> = c.members.iter().map(|m| format!("{m:>16}")).collect();
    println!(
        "day   weights {}   MAE {} combination",
        header.join(""),
        header.join("")
    );
    for (day, w) in c.weights.iter().enumerate() {
        let weights: Vec<String> = w.iter().map(|w| format!("{w:>16.2}")).collect();
        let mae: Vec<String> = r
            .member_mae
            .iter()
            .map(|m| format!("{:>16.3}", m[day]))
            .collect();
        println!(
            "{:>3}           {}       {} {:>11.3}",
            day + 1,
            weights.join(""),
            mae.join(""),
            r.combined_mae[day]
        );
    }
}

/// The day-ahead forecasts (hours 1-24 from each local midnight) from `from` to the end of the
/// history against the actual values, each forecast hour drawn at the hour it forecasts.
fn plot_recent(
    model: &Fitted,
    history: &History,
    from: i64,
    title: &str,
    path: &Path,
) -> anyhow::Result<()> {
    let s = &history.series;
    let first = ((from - s.start) / s.step).max(0) as usize;
    let n = s.values.len();
    if n < 24 {
        return Ok(());
    }
    let (mut times, mut actual, mut forecast, mut lower, mut upper) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for o in day_starts(history, first, n - 24) {
        let fc = match model.predict(&history.until(o)) {
            Ok(fc) => Some(fc),
            Err(ForecastError::Input(_) | ForecastError::TooShort { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        for h in 0..24 {
            times.push(s.time(o + h));
            actual.push(s.values[o + h]);
            forecast.push(fc.as_ref().map_or(f64::NAN, |f| f.points[h]));
            lower.push(fc.as_ref().map_or(f64::NAN, |f| f.lower[h]));
            upper.push(fc.as_ref().map_or(f64::NAN, |f| f.upper[h]));
        }
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
        &format!("{title}: day-ahead forecasts, RMSE {rmse:.3}"),
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
            let (model, context) = artifact::load_fitted(dir)?;
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
        None => {
            let default = Forecaster::default();
            match fit_with_bar(&default, &history, &default.name()) {
                Ok(model) => (
                    model.predict(&history)?,
                    format!("default model {} fitted on the input", model.name()),
                ),
                Err(e) => {
                    let fc = best_baseline(&history)?;
                    let note = format!("baseline {} because {e}", fc.model);
                    (fc, note)
                }
            }
        }
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

/// Forecasts every series of the database with its forecaster, stores each forecast and queues
/// it for the central server: [`edge::forecast_and_record`], as the daemon's job does.
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
    let holidays = holidays(ctx, tz)?;
    let train = |f: &Forecaster, h: &History| fit_with_bar(f, h, &f.name());
    let results = edge::forecast_all(
        &mut store,
        &series,
        &ctx.config,
        &models,
        &holidays,
        &train,
        &|| false,
    );
    let mut failed = Vec::new();
    for (name, recorded) in results {
        match recorded {
            Ok(Recorded::Stored { made, queued }) => println!(
                "{name}: {} hours from {} stored{} ({})",
                made.forecast.points.len(),
                format_local(made.forecast.start, tz),
                if queued > 0 {
                    " and queued for the central server"
                } else {
                    ""
                },
                made.note
            ),
            Ok(Recorded::AlreadyStored(made)) => println!(
                "{name}: the forecast from {} was stored before; not stored or sent again",
                format_local(made.forecast.start, tz)
            ),
            Err(e) => failed.push(format!("series {name}: {e}")),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(())
}

fn write_forecast(fc: &Forecast, tz: Tz, path: &Path) -> anyhow::Result<()> {
    let mut out = Output::create(path)?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        serde_json::to_writer_pretty(&mut out, fc)?;
    } else {
        edge::write_csv(fc, tz, &mut out)?;
    }
    out.finish()
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
