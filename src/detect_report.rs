//! What `hydrowatch detect` writes and prints: the verdicts and alert files, the counts of a run
//! and its scores against labelled events.

use hydrowatch_core::time::DAY;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use hydrowatch_core::Timestamp;
use hydrowatch_core::time::format_local;
use hydrowatch_detect::score::{AlarmLoad, Scorer};
use hydrowatch_detect::{AlarmKind, Alert, Judgement, Transition, Verdict};

use crate::output::Output;

/// Counts for the summary.
#[derive(Default)]
pub(crate) struct Tally {
    readings: u64,
    late: u64,
    invalid: u64,
    stages: [u64; 5],
    transitions: u64,
    opened: std::collections::BTreeMap<&'static str, u64>,
}

impl Tally {
    pub(crate) fn add(&mut self, j: &Judgement, alerts: &[Alert]) {
        self.readings += 1;
        match j.verdict {
            Verdict::Judged => self.stages[usize::from(j.stage)] += 1,
            Verdict::Late => self.late += 1,
            Verdict::Invalid => self.invalid += 1,
        }
        self.alerts(alerts);
    }

    pub(crate) fn alerts(&mut self, alerts: &[Alert]) {
        for a in alerts {
            self.transitions += 1;
            if a.state == Transition::Opened {
                *self.opened.entry(a.kind.name()).or_default() += 1;
            }
        }
    }

    pub(crate) fn print(&self, series: usize, span: Option<(Timestamp, Timestamp)>) {
        let days = span.map_or(0.0, |(a, b)| (b - a) as f64 / DAY as f64);
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

/// The scores against the labels: each event, each kind, the false alarms, per reading; with
/// the leak-free twin's scorer and span, each find's chance and the twin's false alarms.
pub(crate) fn print_scores(
    s: &Scorer,
    span: Option<(Timestamp, Timestamp)>,
    tz: Tz,
    twin: Option<(&Scorer, (Timestamp, Timestamp))>,
) {
    let weeks = span.map_or(0.0, weeks_of);
    let credibility = twin.map(|(t, span)| s.credibility(t, weeks_of(span)));
    let credible = |i: usize| credibility.as_ref().is_none_or(|c| c[i].credible());
    println!();
    println!("| event | start | series | detected by | stage | delay | chance | credible |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (i, e) in s.events().iter().enumerate() {
        let (by, stage, delay) = match e.detected {
            Some((_, kind, stage)) => (
                kind.name().to_string(),
                stage.to_string(),
                hydrowatch_core::time::for_people(60.0 * e.delay_minutes().unwrap_or_default()),
            ),
            None => ("**missed**".into(), String::new(), String::new()),
        };
        let (chance, verdict) = match credibility.as_ref().map(|c| c[i]) {
            Some(c) => (
                c.chance.map_or(String::new(), |p| format!("{p:.3}")),
                match (e.detected.is_some(), c.credible()) {
                    (false, _) => "",
                    (true, true) => "yes",
                    (true, false) => "**no**",
                },
            ),
            None => (String::new(), ""),
        };
        println!(
            "| {} | {} | {} | {by} | {stage} | {delay} | {chance} | {verdict} |",
            e.kind,
            format_local(e.start, tz),
            e.series.join(" "),
        );
    }
    println!();
    println!("| kind | events | detected | credible | median delay | longest delay |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut kinds: Vec<&str> = s.events().iter().map(|e| e.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in kinds {
        let events: Vec<(usize, &hydrowatch_detect::score::EventScore)> = s
            .events()
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == kind)
            .collect();
        let mut delays: Vec<f64> = events
            .iter()
            .filter_map(|(_, e)| e.delay_minutes())
            .collect();
        let credible_finds = events
            .iter()
            .filter(|(i, e)| e.detected.is_some() && credible(*i))
            .count();
        delays.sort_by(f64::total_cmp);
        let median = delays.get(delays.len() / 2).map_or(String::new(), |d| {
            hydrowatch_core::time::for_people(60.0 * *d)
        });
        let longest = delays.last().map_or(String::new(), |d| {
            hydrowatch_core::time::for_people(60.0 * *d)
        });
        let credible_column = if credibility.is_some() {
            credible_finds.to_string()
        } else {
            "(no twin)".to_string()
        };
        println!(
            "| {kind} | {} | {} | {credible_column} | {median} | {longest} |",
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
    print_load("alarm load", &s.load(), weeks);
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

/// The leak-free twin's alarms (every one false): a week, by kind, and its alarm load.
pub(crate) fn print_twin(twin: &Scorer, span: (Timestamp, Timestamp), tz: Tz) {
    let weeks = weeks_of(span);
    let mut kinds: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (_, _, kind) in twin.false_alarms() {
        *kinds.entry(kind.name()).or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "leak-free twin: false alarms {} over {weeks:.1} weeks = {:.2} per week ({})",
        twin.false_alarms().len(),
        twin.false_alarms().len() as f64 / weeks.max(1e-9),
        kinds.join(", ")
    );
    print_load("twin alarm load", &twin.load(), weeks);
    for (t, series, kind) in twin.false_alarms().iter().take(10) {
        println!(
            "  twin false alarm: {} {series} {}",
            format_local(*t, tz),
            kind.name()
        );
    }
}

/// Weeks from the first to the last time of a run.
fn weeks_of((first, last): (Timestamp, Timestamp)) -> f64 {
    (last - first) as f64 / (7.0 * DAY as f64)
}

/// One line of ISA-18.2 alarm-load figures.
fn print_load(what: &str, load: &AlarmLoad, weeks: f64) {
    println!(
        "{what}: {:.2} alarms a day, {} chattering (opened again within an hour of clearing), {} standing (open a day or more)",
        load.opened as f64 / (7.0 * weeks).max(1e-9),
        load.chattering,
        load.standing
    );
}

/// Writes the per-reading verdicts.
pub(crate) struct Verdicts {
    /// The file.
    pub out: Output,
}

impl Verdicts {
    /// Creates the file with its header.
    pub(crate) fn create(path: &Path) -> anyhow::Result<Verdicts> {
        let mut out = Output::create(path)?;
        writeln!(out, "time,series,value,stage,direction,percentile,kind")?;
        Ok(Verdicts { out })
    }

    /// One verdict.
    pub(crate) fn write(
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

/// The alert messages' file, when asked for.
pub(crate) fn alarms_writer(path: Option<&PathBuf>) -> anyhow::Result<Option<Output>> {
    path.map(|p| Output::create(p)).transpose()
}

/// Writes `alerts` as alert messages, one JSON per line.
pub(crate) fn write_alerts(
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
