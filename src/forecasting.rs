//! `hydrowatch train` and `hydrowatch forecast`, on CSV files or the device database: reading a
//! file into an hourly history, fitting with a progress bar, the commands over
//! hydrowatch-forecast's registry of forecasters and hydrowatch-edge's database path.

use std::path::{Path, PathBuf};

use anyhow::bail;
use chrono_tz::Tz;
use clap::Args;
use hydrowatch_core::time::format_local;
use hydrowatch_forecast::forecaster::best_baseline;
use hydrowatch_forecast::neural::{EpochLog, ModelKind, NeuralConfig};
use hydrowatch_forecast::{
    Fit, Fitted, Forecast, ForecastError, Forecaster, History, Holidays, Predict, artifact,
};
use indicatif::{ProgressBar, ProgressStyle};

use hydrowatch_ops::forecasting::{self as ops, Recorded};

use crate::context::Context;
use crate::global::Global;
use crate::output::Output;

/// Options shared by the commands that read a history from a CSV file.
#[derive(Debug, Args)]
pub(crate) struct InputArgs {
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
    pub(crate) fn history(&self, ctx: &Context) -> anyhow::Result<(History, String)> {
        let tz = ctx.timezone(self.timezone.as_deref())?;
        let holidays = holidays(ctx, tz)?;
        let (mut history, name) = match &self.input {
            Some(path) => (
                hydrowatch_ops::history::read_history(path, tz, self.series.as_deref())?,
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
                    ops::db_history(&store, name, &holidays)?,
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
pub(crate) fn holidays(ctx: &Context, tz: Tz) -> anyhow::Result<Holidays> {
    Ok(ops::calendar(&ctx.config, tz)?.holidays)
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
pub(crate) struct ForecastArgs {
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

/// The network a forecaster trains, if any.
pub(crate) fn network(forecaster: &Forecaster) -> Option<&NeuralConfig> {
    match forecaster {
        Forecaster::Network(c) => Some(c),
        Forecaster::Combination(c) => c.network.as_ref(),
        _ => None,
    }
}

/// The names `--model` accepts: `extra` (`combination`, `none`) and every network kind.
pub(crate) fn model_names(extra: &'static str) -> clap::builder::PossibleValuesParser {
    let names = std::iter::once(extra).chain(ModelKind::ALL.iter().map(|k| k.name()));
    clap::builder::PossibleValuesParser::new(names)
}

/// Fits `forecaster`, with a progress bar while its network trains.
pub(crate) fn fit_with_bar(
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

/// `hydrowatch forecast`
pub(crate) fn forecast(global: &Global, args: ForecastArgs) -> anyhow::Result<()> {
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
/// it for the central server: [`ops::forecast_and_record`], as the daemon's job does.
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
    let results = ops::forecast_all(
        &mut store,
        &series,
        &ctx.config,
        &models,
        &holidays,
        &|order| hydrowatch_ops::training::carry_out(order, &train),
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
        ops::write_csv(fc, tz, &mut out)?;
    }
    out.finish()
}
