//! `hydrowatch detect`: judges readings with `hydrowatch-detect`, from a CSV file or from the
//! device database, the way the daemon will: a tick at every row's time (stale sensors, ended
//! nights), every reading judged in time order, criteria refitted daily at
//! `schedule.criteria_at` from the trailing `detection.trailing_days` (or fitted once, on the
//! span before `--baseline-until`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono_tz::Tz;
use clap::Args;
use hydrowatch_core::Timestamp;
use hydrowatch_core::time::format_local;
use hydrowatch_csv::{ReadOptions, ReadingsCsv};
use hydrowatch_detect::score::Scorer;
use hydrowatch_detect::{Alert, Detector, Refit, Runner, SeriesSettings, Verdict};

use hydrowatch_ops::judge::{DatabaseDetector, series_settings, time_of_day};

use crate::context::{Context, parse_local_time};
use crate::detect_report::{
    Tally, Verdicts, alarms_writer, print_scores, print_twin, write_alerts,
};
use crate::global::Global;
use crate::output::Output;

/// `hydrowatch detect`
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
hydrowatch simulate --days 365 --out year.csv --labels events.csv\n  \
hydrowatch detect --input year.csv --output judged.csv --alarms alarms.jsonl --labels events.csv\n  \
hydrowatch detect                  (the device database: readings not judged yet, or the newest)\n  \
hydrowatch detect --since 2024-07-01 --until 2024-08-01   (the device database: a backfill)\n\n\
On the database, alarms go to its alarms table and the detector's state (criteria, open alarms) \
is saved with them, so the next run (or the daemon) continues where this one stopped.\n\n\
OUT has one row per reading and series: time,series,value,stage,direction,percentile,kind; \
the time as the input wrote it (to the second, or finer, when it has them), so that each verdict \
joins back to its reading. \
stage is 0 (normal) to 4: 1 interest (90th-95th percentile), 2 caution (95-98), 3 warning \
(98-99), 4 critical (99-100), each band including its lower bound; kind names the check that gave \
the stage (outlier, stuck, range, jump), or late/invalid for readings that could not be judged. \
ALARMS has one JSON alert per line, only when an alarm opens, escalates, de-escalates or clears. \
Ordinary demand noise reaches stage 4 every day, so an outlier alarm opens only after \
detection.open_after readings (default 2) beyond detection.open_percentile (default 99.9999); \
see `hydrowatch config example` and docs/DETECTION.md.")]
pub(crate) struct DetectArgs {
    /// Readings file: `time,<series>,<series>...` (the simulator's `time,flow_rate,pressure`).
    /// Without it: the device database.
    #[arg(long, value_name = "FILE.csv")]
    pub input: Option<PathBuf>,
    /// Time zone of the file's times (default: the device's).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
    /// Fit the criteria once on the readings before this local time, instead of refitting them
    /// daily from the trailing days.
    #[arg(long, value_name = "T")]
    pub baseline_until: Option<String>,
    /// Per-reading verdicts (CSV). Required with --input.
    #[arg(long, value_name = "OUT.csv")]
    pub output: Option<PathBuf>,
    /// Alarm transitions, one JSON alert message per line.
    #[arg(long, value_name = "ALARMS.jsonl")]
    pub alarms: Option<PathBuf>,
    /// Labelled events (`start,end,kind,series`, as `hydrowatch simulate --labels` writes): score
    /// the detection against them.
    #[arg(long, value_name = "LABELS.csv")]
    pub labels: Option<PathBuf>,
    /// The scenario's leak-free twin (the same readings without the labelled events, in the
    /// same form as --input): judged the same way; its alarms give the false alarms a week and
    /// the chance of each find (with --labels: a find is credible when chance alone would have
    /// made it as early with a probability under 0.1).
    #[arg(long, value_name = "TWIN.csv", requires = "input")]
    pub twin: Option<PathBuf>,
    /// Database: judge the stored readings from this time on (default: from the last one
    /// judged, or only the newest minute on a first run).
    #[arg(long, value_name = "T", conflicts_with = "input")]
    pub since: Option<String>,
    /// Database: stop before this time.
    #[arg(long, value_name = "T", conflicts_with = "input")]
    pub until: Option<String>,
}

/// What a run does with each row, in file and database mode alike: judge it through the runner,
/// count, write the verdicts and alert messages asked for, score against labels.
struct Judging {
    names: Vec<String>,
    tz: Tz,
    machine: u32,
    tally: Tally,
    verdicts: Option<Verdicts>,
    alarms: Option<Output>,
    scorer: Option<Scorer>,
    span: Option<(Timestamp, Timestamp)>,
}

impl Judging {
    /// A run in zone `tz` for device `machine`, writing the verdicts and alert messages asked
    /// for, scoring with `scorer` (the series' names are set when the input is opened).
    fn new(
        tz: Tz,
        machine: u32,
        verdicts: Option<Verdicts>,
        alarms: Option<Output>,
        scorer: Option<Scorer>,
    ) -> Judging {
        Judging {
            names: Vec::new(),
            tz,
            machine,
            tally: Tally::default(),
            verdicts,
            alarms,
            scorer,
            span: None,
        }
    }

    /// Judges the readings `values` (one per series, `None`: missing) at `ts`, written `time` in
    /// the input (the verdicts repeat it, so that each joins back to its reading); returns the
    /// row's alarm transitions (the tick's first).
    fn row(
        &mut self,
        engine: &mut Runner,
        ts: Timestamp,
        time: Option<&str>,
        values: &[Option<f64>],
    ) -> anyhow::Result<Vec<Alert>> {
        self.span = Some(self.span.map_or((ts, ts), |(a, b)| (a.min(ts), b.max(ts))));
        let mut alerts = engine.advance(ts);
        self.tally.alerts(&alerts);
        if let Some(s) = &mut self.scorer {
            s.alerts(&alerts);
        }
        let time = self
            .verdicts
            .is_some()
            .then(|| time.map_or_else(|| format_local(ts, self.tz), str::to_string));
        for (i, v) in values.iter().enumerate() {
            let Some(v) = *v else { continue };
            let (judgement, new) = engine.observe(i, ts, v);
            self.tally.add(&judgement, &new);
            if let Some(s) = &mut self.scorer {
                s.alerts(&new);
                if judgement.verdict == Verdict::Judged {
                    s.reading(&self.names[i], ts);
                }
            }
            if let (Some(out), Some(time)) = (&mut self.verdicts, &time) {
                out.write(time, &self.names[i], v, &judgement)
                    .context("cannot write the verdicts")?;
            }
            alerts.extend(new);
        }
        write_alerts(&mut self.alarms, &alerts, self.machine, self.tz)?;
        Ok(alerts)
    }

    /// Flushes the files and prints the summary (and the scores, with labels; with a twin's
    /// scorer and span, its false alarms and each find's credibility).
    fn finish(
        mut self,
        detector: &Detector,
        twin: Option<(&Scorer, (Timestamp, Timestamp))>,
    ) -> anyhow::Result<()> {
        if let Some(v) = self.verdicts.take() {
            v.out.finish()?;
        }
        if let Some(a) = self.alarms.take() {
            a.finish()?;
        }
        self.tally.print(self.names.len(), self.span);
        for (i, settings) in detector.settings().iter().enumerate() {
            let learned = detector.criteria(i).and_then(|c| c.limits.as_ref());
            println!("{}: {}", settings.name, settings.describe_checks(learned));
            if let Some(line) = detector.describe_states(i) {
                println!("{}: {line}", settings.name);
            }
        }
        if let Some((scorer, span)) = twin {
            println!();
            print_twin(scorer, span, self.tz);
        }
        if let Some(s) = &self.scorer {
            print_scores(s, self.span, self.tz, twin);
        }
        Ok(())
    }
}

/// `hydrowatch detect`
pub(crate) fn run(global: &Global, args: DetectArgs) -> anyhow::Result<()> {
    let ctx = Context::load(global)?;
    match &args.input {
        Some(input) => run_file(&ctx, &args, input),
        None => run_database(&ctx, &args),
    }
}

fn refit_policy(ctx: &Context, args: &DetectArgs, tz: Tz) -> anyhow::Result<Refit> {
    Ok(match &args.baseline_until {
        Some(t) => Refit::Once(parse_local_time(t, tz, "baseline-until")?),
        None => Refit::Daily(time_of_day(ctx.config.schedule.criteria_at)),
    })
}

fn run_file(ctx: &Context, args: &DetectArgs, input: &Path) -> anyhow::Result<()> {
    let tz = ctx.timezone(args.timezone.as_deref())?;
    let Some(output) = &args.output else {
        anyhow::bail!("--output OUT.csv is required with --input (the per-reading verdicts)");
    };
    let labels = args
        .labels
        .as_deref()
        .map(|p| hydrowatch_ops::labels::read_labels(p, tz))
        .transpose()?;
    let machine = ctx.config.device.machine_number;
    let judging = Judging::new(
        tz,
        machine,
        Some(Verdicts::create(output)?),
        alarms_writer(args.alarms.as_ref())?,
        labels.as_deref().map(Scorer::new),
    );
    let (judging, detector) = judge_file(ctx, args, input, Some(output), judging)?;
    let twin = match &args.twin {
        Some(path) => {
            let quiet = Judging::new(tz, machine, None, None, Some(Scorer::new(&[])));
            let (twin, _) = judge_file(ctx, args, path, None, quiet)?;
            anyhow::ensure!(
                twin.names == judging.names,
                "{}: series {:?}, but {} has {:?}: a twin has the same columns",
                path.display(),
                twin.names,
                input.display(),
                judging.names
            );
            Some(twin)
        }
        None => None,
    };
    let twin_scores = twin
        .as_ref()
        .and_then(|t| Some((t.scorer.as_ref()?, t.span?)));
    judging.finish(&detector, twin_scores)
}

/// Judges the file `input` row by row through a new runner, into `judging` (its series names
/// set from the file's header); `output` names the verdicts' file in a failure to write it.
fn judge_file(
    ctx: &Context,
    args: &DetectArgs,
    input: &Path,
    output: Option<&Path>,
    mut judging: Judging,
) -> anyhow::Result<(Judging, Detector)> {
    let tz = judging.tz;
    let options = ReadOptions {
        timezone: tz,
        series: None,
        clock: None,
    };
    let mut file = ReadingsCsv::open(input, &options)?;
    judging.names = file.series().map(str::to_string).collect();
    let settings: Vec<SeriesSettings> = judging
        .names
        .iter()
        .map(|n| series_settings(&ctx.config, n, None))
        .collect();
    let detector = Detector::new(tz, settings)?;
    let mut engine = Runner::new(detector, tz, refit_policy(ctx, args, tz)?);
    let mut previous: Option<(Timestamp, u64)> = None;
    while let Some(row) = file.next_row() {
        let row = row?;
        // The detector judges in time order: an earlier row would be left unjudged ("late").
        if let Some((before, line)) = previous
            && row.ts < before
        {
            anyhow::bail!(
                "{}, line {}: {} is before line {line} ({}): the detector judges a file in time order; sort it by time first",
                input.display(),
                row.line,
                row.time,
                format_local(before, tz)
            );
        }
        previous = Some((row.ts, row.line));
        let judged = judging.row(&mut engine, row.ts, Some(row.time), row.values);
        match output {
            Some(path) => judged.with_context(|| path.display().to_string())?,
            None => judged?,
        };
    }
    Ok((judging, engine.detector))
}

fn run_database(ctx: &Context, args: &DetectArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.labels.is_none(),
        "--labels scores a file run: use it with --input"
    );
    let mut store =
        ctx.open_existing_store("import or record readings first, or give --input FILE.csv")?;
    let tz = store.timezone();
    anyhow::ensure!(
        !store.series()?.is_empty(),
        "{}: the database holds no series yet",
        ctx.db.display()
    );
    let since = args
        .since
        .as_deref()
        .map(|t| parse_local_time(t, tz, "since"))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|t| parse_local_time(t, tz, "until"))
        .transpose()?
        .unwrap_or(Timestamp::MAX);
    let (mut detector, since) = DatabaseDetector::open(
        &store,
        &ctx.config,
        refit_policy(ctx, args, tz)?,
        since,
        Some(i64::from(ctx.config.daemon.future_seconds)),
    )?;
    let mut judging = Judging::new(
        tz,
        ctx.config.device.machine_number,
        args.output.as_deref().map(Verdicts::create).transpose()?,
        alarms_writer(args.alarms.as_ref())?,
        None,
    );
    judging.names = detector.series().iter().map(|s| s.name.clone()).collect();
    let recorded = detector.judge(&mut store, since, until, None, &mut |runner, ts, values| {
        judging.row(runner, ts, None, values)
    })?;
    println!(
        "recorded: {} alarm transitions ({} queued for the server), {} criteria fits, {} nights",
        recorded.transitions, recorded.queued, recorded.criteria, recorded.nights
    );
    judging.finish(&detector.runner.detector, None)?;
    let open = store.alarms(true)?;
    println!("open alarms in {}: {}", ctx.db.display(), open.len());
    for a in open.iter().take(20) {
        println!(
            "  #{} {} {} {} stage {} since {}",
            a.id,
            a.series,
            a.kind,
            a.direction,
            a.stage,
            format_local(a.opened_at, tz)
        );
    }
    Ok(())
}
