//! `hydrowatch bench storage`: the comparison the prototype's team planned and never ran, CSV
//! files against SQLite for the device's workload.
//!
//! Method: the parent prepares one year (by default) of simulated minute data for two series,
//! as the input CSV, as a loaded SQLite database and as a CSV store (the prototype's layout,
//! `time,flow_rate,pressure`, one row a minute). Every measured step runs in a fresh child
//! process (`hydrowatch bench-storage-step`) on fresh copies, so that its peak memory is its own:
//! the child resets its peak-RSS counter (`/proc/self/clear_refs`) just before the step and
//! reports `VmHWM` after it, with the time of the step alone (process start-up excluded).
//!
//! Both contenders are written as a careful engineer would: SQLite through hydrowatch-store (the
//! product's code path); CSV with the same parser as `hydrowatch import`, `fsync` on every
//! append (as durable as a SQLite commit with `synchronous = FULL`), the newest rows read by
//! seeking back from the end of the file, and day reads that stop at the end of the day.

mod step;

pub use step::run_step;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Context as _;
use clap::{Args, ValueEnum};
use hydrowatch_csv::ReadOptions;
use hydrowatch_ops::import::{ImportRequest, import};
use hydrowatch_sim::{EventPlan, SimConfig, Simulator};
use hydrowatch_store::Store;

use super::csv_store::bulk_load_csv;
use super::mean_sd;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

/// Options of `hydrowatch bench storage`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Repetitions of every step.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub reps: u32,
    /// Days of minute data (two series).
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(2..=3660))]
    pub days: u32,
    /// Working directory for the data files (default: a temporary one, removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Options of the hidden per-step command.
#[derive(Debug, Args)]
pub struct StepArgs {
    #[arg(long, value_enum)]
    backend: Backend,
    #[arg(long, value_enum)]
    op: Op,
    #[arg(long)]
    dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Csv,
    Sqlite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Op {
    Append1000,
    BulkLoad,
    Latest60,
    ReadDay,
    ReadYear,
    HourlyRollup,
}

impl Op {
    const ALL: [Op; 6] = [
        Op::Append1000,
        Op::BulkLoad,
        Op::Latest60,
        Op::ReadDay,
        Op::ReadYear,
        Op::HourlyRollup,
    ];
    fn title(self) -> &'static str {
        match self {
            Op::Append1000 => "append one reading (x 1,000)",
            Op::BulkLoad => "bulk-load all minute readings, 2 series",
            Op::Latest60 => "read the newest 60 readings",
            Op::ReadDay => "read one day (2 series)",
            Op::ReadYear => "read everything (2 series)",
            Op::HourlyRollup => "hourly roll-up of one series",
        }
    }
}

/// What a step reports to the parent (one JSON line on stdout).
#[derive(Debug, Serialize, Deserialize)]
struct StepResult {
    secs: f64,
    peak_kib: u64,
    base_kib: u64,
    /// Values (or rows) the step produced: both contenders must agree.
    items: u64,
}

const SOURCE: &str = "source.csv";
const DB: &str = "store.db";
const CSV_STORE: &str = "store.csv";
const WORK_DB: &str = "work.db";
const WORK_CSV: &str = "work.csv";

/// Runs the whole benchmark and prints the table.
pub fn run(args: BenchArgs) -> crate::Result<()> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    eprintln!(
        "preparing {} days of minute data for 2 series in {} ...",
        args.days,
        dir.display()
    );
    prepare(&dir, args.days)?;
    let db_bytes = fs::metadata(dir.join(DB))?.len();
    let csv_bytes = fs::metadata(dir.join(CSV_STORE))?.len();

    let exe = std::env::current_exe()?;
    let steps = Op::ALL.len() as u64 * 2 * u64::from(args.reps);
    let bar = ProgressBar::new(steps).with_style(
        ProgressStyle::with_template("{msg:40} [{bar:30}] {pos}/{len}").expect("valid template"),
    );
    let mut rows = Vec::new();
    for op in Op::ALL {
        let mut per_backend = Vec::new();
        for backend in [Backend::Csv, Backend::Sqlite] {
            bar.set_message(format!("{} {:?}", op.title(), backend));
            let mut results = Vec::new();
            for _ in 0..args.reps {
                reset_work_files(&dir, backend, op)?;
                let out = Command::new(&exe)
                    .args(["bench-storage-step", "--backend"])
                    .arg(format!("{backend:?}").to_lowercase())
                    .arg("--op")
                    .arg(op.to_possible_value().expect("named").get_name())
                    .arg("--dir")
                    .arg(&dir)
                    .output()?;
                if !out.status.success() {
                    return Err(crate::BenchError::Failed(format!(
                        "step {op:?} on {backend:?} failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    )));
                }
                results.push(serde_json::from_slice::<StepResult>(&out.stdout)?);
                bar.inc(1);
            }
            per_backend.push(results);
        }
        rows.push((op, per_backend));
    }
    bar.finish_and_clear();

    println!(
        "{} days x 2 series = {} minute readings; CSV store {:.1} MB, SQLite file {:.1} MB; {} repetitions, mean ± sd",
        args.days,
        2 * u64::from(args.days) * 1440,
        csv_bytes as f64 / 1e6,
        db_bytes as f64 / 1e6,
        args.reps
    );
    println!();
    println!(
        "| operation | CSV time | SQLite time | CSV / SQLite | CSV peak RSS | SQLite peak RSS | values |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (op, per) in &rows {
        let (csv, sql) = (&per[0], &per[1]);
        let t = |r: &[StepResult]| mean_sd(&r.iter().map(|x| x.secs).collect::<Vec<_>>());
        let m = |r: &[StepResult]| {
            mean_sd(
                &r.iter()
                    .map(|x| x.peak_kib as f64 / 1024.0)
                    .collect::<Vec<_>>(),
            )
        };
        let ((tc, tcs), (ts, tss)) = (t(csv), t(sql));
        let ((mc, mcs), (ms, mss)) = (m(csv), m(sql));
        let items = if csv[0].items == sql[0].items {
            csv[0].items.to_string()
        } else {
            format!("MISMATCH csv {} sqlite {}", csv[0].items, sql[0].items)
        };
        println!(
            "| {} | {} | {} | {:.1}x | {mc:.1} ± {mcs:.1} MB | {ms:.1} ± {mss:.1} MB | {items} |",
            op.title(),
            fmt_secs(tc, tcs),
            fmt_secs(ts, tss),
            tc / ts,
        );
    }
    let base = rows[0].1[1][0].base_kib as f64 / 1024.0;
    println!();
    println!(
        "Peak RSS is the step's process, measured from a reset just before the step; the idle process holds {base:.1} MB."
    );
    Ok(())
}

fn fmt_secs(mean: f64, sd: f64) -> String {
    if mean >= 1.0 {
        format!("{mean:.2} ± {sd:.2} s")
    } else if mean >= 1e-3 {
        format!("{:.2} ± {:.2} ms", mean * 1e3, sd * 1e3)
    } else {
        format!("{:.0} ± {:.0} µs", mean * 1e6, sd * 1e6)
    }
}

/// Writes the input CSV, the loaded database and the CSV store.
fn prepare(dir: &Path, days: u32) -> crate::Result<()> {
    let config = SimConfig {
        days,
        seed: 1,
        events: EventPlan::None,
        ..SimConfig::default()
    };
    let mut out = BufWriter::new(File::create(dir.join(SOURCE))?);
    Simulator::new(config).write_csv(&mut out)?;
    out.flush()?;
    drop(out);
    for f in [DB, CSV_STORE] {
        let _ = fs::remove_file(dir.join(f));
    }
    bulk_load_sqlite(&dir.join(SOURCE), &dir.join(DB))?;
    bulk_load_csv(&dir.join(SOURCE), &dir.join(CSV_STORE))?;
    Ok(())
}

/// Gives a step fresh copies of what it changes.
fn reset_work_files(dir: &Path, backend: Backend, op: Op) -> crate::Result<()> {
    for f in [WORK_DB, "work.db-wal", "work.db-shm", WORK_CSV] {
        let _ = fs::remove_file(dir.join(f));
    }
    if op == Op::Append1000 {
        match backend {
            Backend::Sqlite => {
                fs::copy(dir.join(DB), dir.join(WORK_DB))?;
            }
            Backend::Csv => {
                fs::copy(dir.join(CSV_STORE), dir.join(WORK_CSV))?;
            }
        }
    }
    Ok(())
}

/// A `kB` field of `/proc/<process>/status` (`process`: `self` or a pid).
pub(crate) fn proc_status_kib(process: &str, field: &str) -> crate::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{process}/status"))?;
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .and_then(|r| r.trim_start_matches(':').trim().strip_suffix("kB"))
        })
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{process}/status"))
}

/// The product's import path (hydrowatch-ops' `import`, as `hydrowatch import`). Returns values
/// stored.
fn bulk_load_sqlite(source: &Path, db: &Path) -> crate::Result<u64> {
    let mut store = Store::open(db, chrono_tz::Asia::Seoul)?;
    let files = [source.to_path_buf()];
    let request = ImportRequest {
        files: &files,
        options: ReadOptions {
            timezone: chrono_tz::Asia::Seoul,
            series: None,
            clock: None,
        },
        skip_bad: false,
        config: None,
        new_series: false,
    };
    Ok(import(&mut store, &request, &mut |_| {})?.summary.inserted)
}
