//! `hydrowatch detect`: judges readings with `hydrowatch-detect`, from a CSV file or from the
//! device database, the way the daemon will: a tick at every row's time (stale sensors, ended
//! nights), every reading judged in time order, criteria refitted daily at
//! `schedule.criteria_at` from the trailing `detection.trailing_days` (or fitted once, on the
//! span before `--baseline-until`).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono_tz::Tz;
use clap::Args;
use hydrowatch_core::time::format_local;
use hydrowatch_core::{LocalTimeParser, Timestamp};
use hydrowatch_csv::{ReadOptions, ReadingsCsv};
use hydrowatch_detect::score::{Label, Scorer};
use hydrowatch_detect::{
    AlarmKind, Alert, Detector, Judgement, Refit, Runner, SeriesSettings, Transition, Verdict,
};

use hydrowatch_ops::judge::{DatabaseDetector, series_settings, time_of_day};

use crate::cli::Global;
use crate::context::{Context, parse_local_time};
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
pub struct DetectArgs {
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
    /// Database: judge the stored readings from this time on (default: from the last one
    /// judged, or only the newest minute on a first run).
    #[arg(long, value_name = "T", conflicts_with = "input")]
    pub since: Option<String>,
    /// Database: stop before this time.
    #[arg(long, value_name = "T", conflicts_with = "input")]
    pub until: Option<String>,
}

/// Writes the per-reading verdicts.
struct Verdicts {
    out: Output,
}

impl Verdicts {
    fn create(path: &Path) -> anyhow::Result<Verdicts> {
        let mut out = Output::create(path)?;
        writeln!(out, "time,series,value,stage,direction,percentile,kind")?;
        Ok(Verdicts { out })
    }

    fn write(
        &mut self,
        time: &str,
        series: &str,
        value: f64,
        j: &Judgement,
    ) -> std::io::Result<()> {
        let kind = match j.verdict {
            Verdict::Judged => j.kind.map_or("", AlarmKind::name),
            Verdict::Late => "late",
            Verdict::Invalid => "invalid",
        };
        let direction = j.direction.map_or("", |d| d.name());
        match j.percentile {
            Some(p) => writeln!(
                self.out,
                "{time},{series},{value},{},{direction},{p:.2},{kind}",
                j.stage
            ),
            None => writeln!(
                self.out,
                "{time},{series},{value},{},{direction},,{kind}",
                j.stage
            ),
        }
    }
}

/// Counts for the summary.
#[derive(Default)]
struct Tally {
    readings: u64,
    late: u64,
    invalid: u64,
    stages: [u64; 5],
    transitions: u64,
    opened: std::collections::BTreeMap<&'static str, u64>,
}

impl Tally {
    fn add(&mut self, j: &Judgement, alerts: &[Alert]) {
        self.readings += 1;
        match j.verdict {
            Verdict::Judged => self.stages[usize::from(j.stage)] += 1,
            Verdict::Late => self.late += 1,
            Verdict::Invalid => self.invalid += 1,
        }
        self.alerts(alerts);
    }

    fn alerts(&mut self, alerts: &[Alert]) {
        for a in alerts {
            self.transitions += 1;
            if a.state == Transition::Opened {
                *self.opened.entry(a.kind.name()).or_default() += 1;
            }
        }
    }

    fn print(&self, series: usize, span: Option<(Timestamp, Timestamp)>) {
        let days = span.map_or(0.0, |(a, b)| (b - a) as f64 / 86_400.0);
        println!(
            "judged {} readings of {series} series over {days:.1} days ({} late, {} invalid, not judged)",
            self.readings, self.late, self.invalid
        );
        println!(
            "stages: 0 normal {}, 1 interest {}, 2 caution {}, 3 warning {}, 4 critical {}",
            self.stages[0], self.stages[1], self.stages[2], self.stages[3], self.stages[4]
        );
        let opened: u64 = self.opened.values().sum();
        let kinds: Vec<String> = self
            .opened
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!(
            "alarms opened: {opened}{} ({} transitions)",
            if kinds.is_empty() {
                String::new()
            } else {
                format!(" ({})", kinds.join(", "))
            },
            self.transitions
        );
    }
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

    /// Flushes the files and prints the summary (and the scores, with labels).
    fn finish(mut self, detector: &Detector) -> anyhow::Result<()> {
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
        }
        if let Some(s) = &self.scorer {
            print_scores(s, self.span, self.tz);
        }
        Ok(())
    }
}

/// `hydrowatch detect`
pub fn run(global: &Global, args: DetectArgs) -> anyhow::Result<()> {
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

fn alarms_writer(path: Option<&PathBuf>) -> anyhow::Result<Option<Output>> {
    path.map(|p| Output::create(p)).transpose()
}

fn write_alerts(
    out: &mut Option<Output>,
    alerts: &[Alert],
    machine: u32,
    tz: Tz,
) -> anyhow::Result<()> {
    if let Some(out) = out {
        for a in alerts {
            serde_json::to_writer(&mut *out, &a.message(machine, tz))?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

fn run_file(ctx: &Context, args: &DetectArgs, input: &Path) -> anyhow::Result<()> {
    let tz = ctx.timezone(args.timezone.as_deref())?;
    let Some(output) = &args.output else {
        anyhow::bail!("--output OUT.csv is required with --input (the per-reading verdicts)");
    };
    let options = ReadOptions {
        timezone: tz,
        series: None,
        clock: None,
    };
    let mut file = ReadingsCsv::open(input, &options)?;
    let names: Vec<String> = file.series().map(str::to_string).collect();
    let settings: Vec<SeriesSettings> = names
        .iter()
        .map(|n| series_settings(&ctx.config, n, None))
        .collect();
    let detector = Detector::new(tz, settings)?;
    let mut engine = Runner::new(detector, tz, refit_policy(ctx, args, tz)?);
    let scorer = args
        .labels
        .as_deref()
        .map(|p| read_labels(p, tz).map(|l| Scorer::new(&l)))
        .transpose()?;
    let mut judging = Judging {
        names,
        tz,
        machine: ctx.config.device.machine_number,
        tally: Tally::default(),
        verdicts: Some(Verdicts::create(output)?),
        alarms: alarms_writer(args.alarms.as_ref())?,
        scorer,
        span: None,
    };
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
        judging
            .row(&mut engine, row.ts, Some(row.time), row.values)
            .with_context(|| output.display().to_string())?;
    }
    judging.finish(&engine.detector)
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
    let mut judging = Judging {
        names: detector.series().iter().map(|s| s.name.clone()).collect(),
        tz,
        machine: ctx.config.device.machine_number,
        tally: Tally::default(),
        verdicts: args.output.as_deref().map(Verdicts::create).transpose()?,
        alarms: alarms_writer(args.alarms.as_ref())?,
        scorer: None,
        span: None,
    };
    let recorded = detector.judge(&mut store, since, until, None, &mut |runner, ts, values| {
        judging.row(runner, ts, None, values)
    })?;
    println!(
        "recorded: {} alarm transitions ({} queued for the server), {} criteria fits, {} nights",
        recorded.transitions, recorded.queued, recorded.criteria, recorded.nights
    );
    judging.finish(&detector.runner.detector)?;
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

/// Reads `start,end,kind,series` labels; errors name file, line, field and value.
pub fn read_labels(path: &Path, tz: Tz) -> anyhow::Result<Vec<Label>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut parser = LocalTimeParser::new(tz);
    let mut labels = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}: cannot read", path.display()))?;
        let n = i + 1;
        if n == 1 {
            anyhow::ensure!(
                line.trim() == "start,end,kind,series",
                "{}:1: header {:?}: expected start,end,kind,series",
                path.display(),
                line.trim()
            );
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        anyhow::ensure!(
            fields.len() == 4,
            "{}:{n}: {} fields, expected 4 (start,end,kind,series): {line:?}",
            path.display(),
            fields.len()
        );
        let mut time = |field: &str, text: &str| {
            parser
                .parse(text)
                .with_context(|| format!("{}:{n}: field {field}, value {text:?}", path.display()))
        };
        let (start, end) = (time("start", fields[0])?, time("end", fields[1])?);
        anyhow::ensure!(
            start < end,
            "{}:{n}: end {:?} is not after start {:?}",
            path.display(),
            fields[1],
            fields[0]
        );
        labels.push(Label {
            start,
            end,
            kind: fields[2].to_string(),
            series: fields[3].to_string(),
        });
    }
    Ok(labels)
}

fn print_scores(s: &Scorer, span: Option<(Timestamp, Timestamp)>, tz: Tz) {
    let weeks = span.map_or(0.0, |(a, b)| (b - a) as f64 / (7.0 * 86_400.0));
    println!();
    println!("| event | start | series | detected by | stage | delay |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for e in s.events() {
        let (by, stage, delay) = match e.detected {
            Some((_, kind, stage)) => (
                kind.name().to_string(),
                stage.to_string(),
                format_delay(e.delay_minutes().unwrap_or_default()),
            ),
            None => ("**missed**".into(), String::new(), String::new()),
        };
        println!(
            "| {} | {} | {} | {by} | {stage} | {delay} |",
            e.kind,
            format_local(e.start, tz),
            e.series.join(" "),
        );
    }
    println!();
    println!("| kind | events | detected | median delay | longest delay |");
    println!("| --- | --- | --- | --- | --- |");
    let mut kinds: Vec<&str> = s.events().iter().map(|e| e.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in kinds {
        let events: Vec<_> = s.events().iter().filter(|e| e.kind == kind).collect();
        let mut delays: Vec<f64> = events.iter().filter_map(|e| e.delay_minutes()).collect();
        delays.sort_by(f64::total_cmp);
        let median = delays
            .get(delays.len() / 2)
            .map_or(String::new(), |d| format_delay(*d));
        let longest = delays.last().map_or(String::new(), |d| format_delay(*d));
        println!(
            "| {kind} | {} | {} | {median} | {longest} |",
            events.len(),
            delays.len()
        );
    }
    let false_alarms = s.false_alarms();
    println!();
    println!(
        "alarms opened: {}; outside every event (false alarms): {} = {:.2} per week",
        s.opened(),
        false_alarms.len(),
        false_alarms.len() as f64 / weeks.max(1e-9)
    );
    for (t, series, kind) in false_alarms.iter().take(20) {
        println!(
            "  false alarm: {} {series} {}",
            format_local(*t, tz),
            kind.name()
        );
    }
    if false_alarms.len() > 20 {
        println!(
            "  ... and {} more (every alarm is in the --alarms file)",
            false_alarms.len() - 20
        );
    }
    let c = s.confusion();
    println!(
        "per reading (abnormal = inside an event; flagged = an alarm of its series open): precision {:.3}, recall {:.3}, F1 {:.3}",
        c.precision(),
        c.recall(),
        c.f1()
    );
}

fn format_delay(minutes: f64) -> String {
    if minutes < 120.0 {
        format!("{minutes:.0} min")
    } else if minutes < 48.0 * 60.0 {
        format!("{:.1} h", minutes / 60.0)
    } else {
        format!("{:.1} days", minutes / 1440.0)
    }
}

/// `hydrowatch bench detect`
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Days of simulated minute data.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Repetitions of each measurement.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// `hydrowatch bench detect`: the detection of the daemon without any I/O, on a simulated year
/// held in memory. Prints the backfill time (criteria refitted daily, every reading judged, every
/// tick) and the time per reading with fixed criteria.
pub fn bench(global: &Global, args: BenchArgs) -> anyhow::Result<()> {
    use std::time::Instant;
    let ctx = Context::load(global)?;
    let tz = ctx.config.device.timezone;
    let sim = hydrowatch_sim::Simulator::new(hydrowatch_sim::SimConfig {
        days: args.days,
        timezone: tz,
        ..Default::default()
    });
    let rows: Vec<(Timestamp, [Option<f64>; 2])> =
        sim.map(|s| (s.ts, [s.flow_rate, s.pressure])).collect();
    let readings: usize = rows.iter().map(|r| r.1.iter().flatten().count()).sum();
    let settings = || -> Vec<SeriesSettings> {
        hydrowatch_sim::SERIES
            .iter()
            .map(|n| series_settings(&ctx.config, n, None))
            .collect()
    };
    let pass = |refit: Refit| -> anyhow::Result<(f64, usize)> {
        let mut engine = Runner::new(Detector::new(tz, settings())?, tz, refit);
        let mut alerts = 0;
        let started = Instant::now();
        for (ts, values) in &rows {
            alerts += engine.advance(*ts).len();
            for (i, v) in values.iter().enumerate() {
                if let Some(v) = v {
                    alerts += engine.observe(i, *ts, *v).1.len();
                }
            }
        }
        Ok((started.elapsed().as_secs_f64(), alerts))
    };
    let until = rows.get(28 * 1440).map_or(Timestamp::MAX, |r| r.0);
    println!(
        "{} days of minute data, {readings} readings of flow_rate and pressure, {} runs each:",
        args.days, args.runs
    );
    let mut backfill = Vec::new();
    let mut judged = Vec::new();
    for _ in 0..args.runs.max(1) {
        let (s, _) = pass(Refit::Daily(time_of_day(ctx.config.schedule.criteria_at)))?;
        backfill.push(s);
        let (s, _) = pass(Refit::Once(until))?;
        judged.push(s * 1e6 / readings as f64);
    }
    let (mb, sb) = mean_sd(&backfill);
    let (mj, sj) = mean_sd(&judged);
    println!("backfill, criteria refitted daily: {mb:.2} s ± {sb:.2}");
    println!("one reading judged (criteria fitted once, ticks included): {mj:.2} µs ± {sj:.2}");
    Ok(())
}

/// Mean and standard deviation.
pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}
