//! `hydrowatch backtest`: every forecaster of the registry (and other programs' forecasts read
//! from files) from the same origins of each series, scored overall and per season against
//! seasonal naive; `--select` records each series' winner.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};
use hydrowatch_forecast::backtest::{SEASONS, Schedule, origins};
use hydrowatch_forecast::combination::Combination;
use hydrowatch_forecast::neural::{Loss, NeuralConfig, Strategy};
use hydrowatch_forecast::{Forecaster, History};
use hydrowatch_ops::contest::{self, External, SeriesResults};
use hydrowatch_ops::forecasting as ops;

use crate::backtest_tables as tables;

use crate::context::Context;
use crate::forecasting::{fit_with_bar, holidays, model_names};
use crate::global::Global;

/// Which origins a backtest forecasts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OriginsArg {
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
pub(crate) struct BacktestArgs {
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
    #[arg(long, value_delimiter = ',', default_value = "lstm", value_parser = model_names("none"))]
    pub model: Vec<String>,
    /// Strategies of those networks (comma separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "mimo")]
    pub strategy: Vec<Strategy>,
    /// Hours of input of the networks (the combination's too).
    #[arg(short = 'w', long, default_value_t = 48, value_parser = clap::value_parser!(u32).range(1..=2016))]
    pub window: u32,
    /// Most epochs of the networks.
    #[arg(short = 'e', long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub epochs: u32,
    /// Training loss of the networks.
    #[arg(long, value_enum, default_value = "l1")]
    pub loss: Loss,
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

/// The forecasters the options ask for: the baselines, the networks alone, the combination.
fn forecasters(args: &BacktestArgs) -> anyhow::Result<Vec<Forecaster>> {
    let mut networks = Vec::new();
    for m in args.model.iter().filter(|m| *m != "none") {
        for s in &args.strategy {
            let mut config = NeuralConfig::new(m.parse().map_err(anyhow::Error::msg)?, *s);
            config.window = args.window as usize;
            config.train.epochs = args.epochs as usize;
            config.train.loss = args.loss;
            config.train.seed = args.seed;
            networks.push(config);
        }
    }
    let mut member = Combination::default()
        .network
        .expect("the default combination has a network");
    member.window = args.window as usize;
    member.train.epochs = args.epochs as usize;
    member.train.loss = args.loss;
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
fn externals(args: &BacktestArgs) -> anyhow::Result<Vec<External>> {
    args.external
        .iter()
        .map(|e| match e.split_once('=') {
            Some((name, dir)) if !name.is_empty() && !dir.is_empty() => Ok(External {
                name: name.to_string(),
                dir: PathBuf::from(dir),
            }),
            _ => bail!("--external {e:?}: write NAME=DIR, e.g. statsforecast=peer/"),
        })
        .collect()
}

/// `hydrowatch backtest`
pub(crate) fn backtest_cmd(global: &Global, args: BacktestArgs) -> anyhow::Result<()> {
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
            inputs.push((s.name.clone(), ops::db_history(store, &s.name, &days_off)?));
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
        let mut history = hydrowatch_ops::history::read_history(file, tz, None)?;
        history.holidays = days_off.clone();
        inputs.push((name, history));
    }
    let fit = |f: &Forecaster, h: &History, label: &str| fit_with_bar(f, h, label);
    let mut all: Vec<SeriesResults> = Vec::new();
    for (name, history) in inputs {
        let at = origins(&history, weeks, schedule);
        if at.is_empty() {
            eprintln!(
                "{name}: left out: no origin with 168 hours after it in the last {weeks} weeks"
            );
            continue;
        }
        let series = contest::run_series(
            &name,
            history,
            &forecasters,
            &externals,
            &at,
            refit,
            &fit,
            &mut |f, e| eprintln!("{name}: {} left out: {e}", f.name()),
        )?;
        if let Some(dir) = &args.write_forecasts {
            for r in series.own() {
                let dir = dir.join(r.name.replace('/', "-"));
                contest::write_forecasts(&dir, &name, &r.forecasts, series.history.timezone)?;
            }
        }
        let origins_are = match schedule {
            Schedule::Daily => format!("every local midnight of the last {weeks} weeks"),
            Schedule::Weekly => format!("every local Monday of the last {weeks} weeks"),
        };
        tables::series(
            &format!("{name}: {} origins, {origins_are}", at.len()),
            &series.results,
            &series.banded,
            args.markdown,
        );
        if let Some(store) = store.as_mut().filter(|_| args.select) {
            let (best, score) = contest::select(store, &series, chrono::Utc::now().timestamp())?;
            println!(
                "{name}: {best} recorded as the default forecaster in {} (PI1 + PI3 = {score:.3})",
                ctx.db.display()
            );
        }
        all.push(series);
    }
    // Series with every forecaster scored are summarised together.
    let full = all.iter().map(|s| s.results.len()).max().unwrap_or(0);
    let complete: Vec<&SeriesResults> = all.iter().filter(|s| s.results.len() == full).collect();
    if complete.len() > 1 {
        tables::summary(
            &format!("all origins, mean over {} series", complete.len()),
            &contest::summarise(&complete, &contest::overall(&complete)),
            args.markdown,
        );
    }
    if complete.len() > 1 && schedule == Schedule::Weekly {
        for season in SEASONS {
            if let Some(scored) = contest::in_season(&complete, season) {
                tables::summary(
                    &format!("origins in {season}, mean over {} series", complete.len()),
                    &contest::summarise(&complete, &scored),
                    args.markdown,
                );
            }
        }
    }
    Ok(())
}
