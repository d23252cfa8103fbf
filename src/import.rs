//! `hydrowatch import`: CSV files into the device database, all in one transaction.

use std::collections::HashMap;
use std::path::Path;

use anyhow::bail;
use hydrowatch_csv::{CsvError, ReadOptions, ReadingsCsv};
use hydrowatch_store::{BulkSummary, Outcome, SeriesId};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{Global, ImportArgs};
use crate::context::Context;

/// Conflicts shown one by one before only counting the rest.
const SHOWN_CONFLICTS: u64 = 20;

#[derive(Default)]
struct Tally {
    rows: u64,
    missing: u64,
    skipped: u64,
    per_series: HashMap<String, u64>,
}

/// Runs the command.
pub fn run(global: &Global, args: ImportArgs) -> anyhow::Result<()> {
    let ctx = Context::load(global)?;
    let options = ReadOptions {
        timezone: ctx.timezone(args.timezone.as_deref())?,
        series: args.series.clone(),
        // The live sources' rule: a mistyped year stored once would stand ahead of every
        // later reading.
        clock: Some((
            chrono::Utc::now().timestamp(),
            i64::from(ctx.config.daemon.future_seconds),
        )),
    };
    for f in &args.files {
        anyhow::ensure!(f.is_file(), "{}: no such file", f.display());
    }
    let total_bytes: u64 = args
        .files
        .iter()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum();
    let mut store = ctx.open_store()?;
    let bar = ProgressBar::new(total_bytes).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut tally = Tally::default();
    let result = store.bulk(|bulk| -> anyhow::Result<()> {
        let mut done_bytes = 0;
        for path in &args.files {
            bar.set_message(path.display().to_string());
            let mut file = ReadingsCsv::open(path, &options)?;
            let names: Vec<String> = file.series().map(str::to_string).collect();
            let mut ids: Vec<SeriesId> = Vec::new();
            for name in &names {
                let unit = if ctx.configured {
                    let Some(s) = ctx.config.series(name) else {
                        bail!(
                            "{}: series {name:?} is not in the configuration (configured: {}); fix the header or the configuration",
                            path.display(),
                            ctx.config.series.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                        );
                    };
                    Some(s.unit.as_str())
                } else {
                    None
                };
                ids.push(bulk.ensure_series(name, unit)?);
            }
            let mut new = vec![0u64; ids.len()];
            while let Some(row) = file.next_row() {
                let row = match row {
                    Ok(row) => row,
                    Err(e) if args.skip_bad && e.is_row_error() => {
                        bar.suspend(|| eprintln!("skipped: {e}"));
                        tally.skipped += 1;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                tally.rows += 1;
                let (line, ts) = (row.line, row.ts);
                for (i, value) in row.values.iter().enumerate() {
                    let Some(value) = *value else {
                        tally.missing += 1;
                        continue;
                    };
                    match bulk.insert(ids[i], ts, value)? {
                        Outcome::Inserted => new[i] += 1,
                        Outcome::Duplicate => {}
                        Outcome::Conflict { stored } => {
                            if bulk.summary().conflicts <= SHOWN_CONFLICTS {
                                bar.suspend(|| {
                                    eprintln!(
                                        "conflict: {}, line {line}: {} = {value} but {stored} is already stored for that time; kept {stored}",
                                        path.display(),
                                        names[i]
                                    )
                                });
                            }
                        }
                    }
                }
                if tally.rows % 8192 == 0 {
                    bar.set_position(done_bytes + file.bytes_read());
                }
            }
            done_bytes += file.bytes_read();
            bar.set_position(done_bytes);
            for (name, n) in names.iter().zip(new) {
                *tally.per_series.entry(name.clone()).or_default() += n;
            }
        }
        Ok(())
    });
    bar.finish_and_clear();
    let ((), summary) = result.map_err(|e| explain_failure(e, &ctx.db))?;
    report(&args, &tally, summary);
    Ok(())
}

/// The error first (file, line, column, value), then what it means for the database.
fn explain_failure(e: anyhow::Error, db: &Path) -> anyhow::Error {
    let hint = match e.downcast_ref::<CsvError>() {
        Some(csv) if csv.is_row_error() => {
            "; fix the row, or pass --skip-bad to import the other rows"
        }
        _ => "",
    };
    anyhow::anyhow!(
        "{e:#}\nnothing was imported ({} is unchanged){hint}",
        db.display()
    )
}

fn report(args: &ImportArgs, tally: &Tally, summary: BulkSummary) {
    let mut series: Vec<_> = tally.per_series.iter().collect();
    series.sort();
    let per: Vec<String> = series.iter().map(|(n, c)| format!("{n} {c}")).collect();
    println!(
        "imported {} file(s), {} rows: {} new readings ({}); {} already stored; {} conflicting (stored value kept); {} missing cells; {} bad rows skipped",
        args.files.len(),
        tally.rows,
        summary.inserted,
        per.join(", "),
        summary.duplicates,
        summary.conflicts,
        tally.missing,
        tally.skipped,
    );
    if summary.conflicts > SHOWN_CONFLICTS {
        eprintln!(
            "({} more conflicts not shown)",
            summary.conflicts - SHOWN_CONFLICTS
        );
    }
}
