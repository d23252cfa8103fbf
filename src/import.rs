//! `hydrowatch import`: CSV files into the device database, all in one transaction
//! (hydrowatch-ops' `import`), with a progress bar.

use std::path::{Path, PathBuf};

use clap::Args;
use hydrowatch_csv::ReadOptions;
use hydrowatch_ops::import::{ImportError, ImportEvent, ImportReport, ImportRequest, import};
use indicatif::{ProgressBar, ProgressStyle};

use crate::context::Context;
use crate::global::Global;

/// `hydrowatch import [--db FILE] [--series NAME] [--timezone TZ] [--skip-bad] [--new-series] FILE...`
#[derive(Debug, Args)]
#[command(
    after_help = "Layouts:\n  time,value                 one series, named with --series NAME (the prototype's files)\n  \
time,flow_rate,pressure    one series per column, named by the header\n\n\
Times: `2024-07-09 0:01`, `2024-07-09 00:01:00`, `2024-07-09T00:01`, optionally with an offset \
(`+09:00`, `Z`). Without an offset they are local times in --timezone: a time inside the \
spring-forward gap is an error; a repeated autumn hour is read in file order (first summer \
time, then winter time).\n\n\
Empty cells (or NaN, NA, null) are missing values, not zeros. A bad row stops the import and \
nothing is written; with --skip-bad every bad row is reported and the rest imported. \
Importing the same file again adds nothing."
)]
pub(crate) struct ImportArgs {
    /// The series of a `time,value` file; with a wide file, import only this column.
    #[arg(long, value_name = "NAME")]
    pub series: Option<String>,
    /// Time zone of times written without an offset (default: the device's).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
    /// Skip bad rows (each is reported) instead of stopping.
    #[arg(long)]
    pub skip_bad: bool,
    /// Without a configuration, make a new series even where its name is close to a stored
    /// one's (`flow_rat` beside `flow_rate` is otherwise refused as a misspelt header).
    #[arg(long)]
    pub new_series: bool,
    /// CSV files to import, in one transaction.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Conflicts shown one by one before only counting the rest.
const SHOWN_CONFLICTS: u64 = 20;

/// Runs the command.
pub(crate) fn run(global: &Global, args: ImportArgs) -> anyhow::Result<()> {
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
    let request = ImportRequest {
        files: &args.files,
        options,
        skip_bad: args.skip_bad,
        config: ctx.configured.then_some(&ctx.config),
        new_series: args.new_series,
    };
    let result = import(&mut store, &request, &mut |event| {
        match event {
        ImportEvent::File(path) => bar.set_message(path.display().to_string()),
        ImportEvent::Progress(bytes) => bar.set_position(bytes),
        ImportEvent::Skipped(e) => bar.suspend(|| eprintln!("skipped: {e}")),
        ImportEvent::Conflict {
            file,
            line,
            series,
            value,
            stored,
            count,
        } if count <= SHOWN_CONFLICTS => bar.suspend(|| {
            eprintln!(
                "conflict: {}, line {line}: {series} = {value} but {stored} is already stored for that time; kept {stored}",
                file.display()
            )
        }),
        ImportEvent::Conflict { .. } => {}
    }
    });
    bar.finish_and_clear();
    let report = result.map_err(|e| explain_failure(&e, &ctx.db))?;
    for name in &report.created {
        eprintln!("new series {name:?} created (it was not in the database)");
    }
    print_report(&report);
    Ok(())
}

/// The error first (file, line, column, value), then what it means for the database.
fn explain_failure(e: &ImportError, db: &Path) -> anyhow::Error {
    let hint = if e.is_row_error() {
        "; fix the row, or pass --skip-bad to import the other rows"
    } else {
        ""
    };
    anyhow::anyhow!(
        "{e}\nnothing was imported ({} is unchanged){hint}",
        db.display()
    )
}

fn print_report(r: &ImportReport) {
    let per: Vec<String> = r
        .per_series
        .iter()
        .map(|(n, c)| format!("{n} {c}"))
        .collect();
    println!(
        "imported {} file(s), {} rows: {} new readings ({}); {} already stored; {} conflicting (stored value kept); {} missing cells; {} bad rows skipped",
        r.files,
        r.rows,
        r.summary.inserted,
        per.join(", "),
        r.summary.duplicates,
        r.summary.conflicts,
        r.missing,
        r.skipped,
    );
    if r.summary.conflicts > SHOWN_CONFLICTS {
        eprintln!(
            "({} more conflicts not shown)",
            r.summary.conflicts - SHOWN_CONFLICTS
        );
    }
}
