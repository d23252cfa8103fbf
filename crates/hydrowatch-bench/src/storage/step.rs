//! One measured step of `hydrowatch bench storage`, in a fresh process (`hydrowatch
//! bench-storage-step`): set up outside the clock, the peak-RSS counter reset, the step timed,
//! one JSON line of [`StepResult`] printed for the parent.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::time::Instant;

use crate::Context as _;
use hydrowatch_core::time::DAY;
use hydrowatch_sim::SERIES;
use hydrowatch_store::{Outcome, Store};

use super::{
    Backend, CSV_STORE, DB, Op, SOURCE, StepArgs, StepResult, WORK_CSV, WORK_DB, bulk_load_sqlite,
    proc_status_kib,
};
use crate::csv_store::{bulk_load_csv, csv_hourly, csv_latest, csv_read, csv_span};

/// Runs one step in this (fresh) process and prints its [`StepResult`].
pub fn run_step(args: StepArgs) -> crate::Result<()> {
    let dir = &args.dir;
    // Everything the step needs but should not be charged for is set up before the clock starts.
    let tz = chrono_tz::Asia::Seoul;
    let store = match (args.backend, args.op) {
        (Backend::Sqlite, Op::Append1000) => Some(Store::open(&dir.join(WORK_DB), tz)?),
        (Backend::Sqlite, Op::BulkLoad) => None,
        (Backend::Sqlite, _) => Some(Store::open(&dir.join(DB), tz)?),
        (Backend::Csv, _) => None,
    };
    let (first, last) = match &store {
        Some(s) => s.span(s.series_id(SERIES[0])?)?.context("empty store")?,
        None => csv_span(&dir.join(CSV_STORE))?,
    };
    let day_start = first + (last - first) / 2 / DAY * DAY;
    let base_kib = proc_status_kib("self", "VmRSS")?;
    // Reset the peak-RSS counter (Linux >= 4.0); without it, VmHWM includes start-up.
    let _ = fs::write("/proc/self/clear_refs", "5");
    let started = Instant::now();
    let items = match (args.backend, args.op, store) {
        (Backend::Sqlite, Op::Append1000, Some(mut s)) => {
            let id = s.series_id(SERIES[0])?;
            for i in 1..=1000 {
                let r = hydrowatch_core::Reading {
                    ts: last + 60 * i,
                    value: 100.0 + i as f64,
                };
                let out = s.insert_readings(&[(id, r)])?;
                crate::ensure(out == [Outcome::Inserted], || {
                    format!("one reading inserted, not {out:?}")
                })?;
            }
            1000
        }
        (Backend::Csv, Op::Append1000, _) => {
            let path = dir.join(WORK_CSV);
            for i in 1..=1000 {
                let ts = last + 60 * i;
                let mut f = OpenOptions::new().append(true).open(&path)?;
                writeln!(
                    f,
                    "{},{},",
                    hydrowatch_core::time::format_local(ts, tz),
                    100.0 + i as f64
                )?;
                f.sync_data()?;
            }
            1000
        }
        (Backend::Sqlite, Op::BulkLoad, _) => {
            bulk_load_sqlite(&dir.join(SOURCE), &dir.join(WORK_DB))?
        }
        (Backend::Csv, Op::BulkLoad, _) => bulk_load_csv(&dir.join(SOURCE), &dir.join(WORK_CSV))?,
        (Backend::Sqlite, Op::Latest60, Some(s)) => {
            s.latest(s.series_id(SERIES[0])?, 60)?.len() as u64
        }
        (Backend::Csv, Op::Latest60, _) => csv_latest(&dir.join(CSV_STORE), 60)?,
        (Backend::Sqlite, Op::ReadDay | Op::ReadYear, Some(s)) => {
            let (from, to) = if args.op == Op::ReadDay {
                (day_start, day_start + DAY)
            } else {
                (first, last + 1)
            };
            let mut n = 0;
            for name in SERIES {
                n += s.readings(s.series_id(name)?, from, to)?.len() as u64;
            }
            n
        }
        (Backend::Csv, Op::ReadDay, _) => {
            csv_read(&dir.join(CSV_STORE), day_start, day_start + DAY)?
        }
        (Backend::Csv, Op::ReadYear, _) => csv_read(&dir.join(CSV_STORE), first, last + 1)?,
        (Backend::Sqlite, Op::HourlyRollup, Some(s)) => {
            s.hourly(s.series_id(SERIES[0])?, first, last + 1)?.len() as u64
        }
        (Backend::Csv, Op::HourlyRollup, _) => csv_hourly(&dir.join(CSV_STORE))?,
        (Backend::Sqlite, _, None) => unreachable!("a store is opened for every SQLite read step"),
    };
    let secs = started.elapsed().as_secs_f64();
    let peak_kib = proc_status_kib("self", "VmHWM")?;
    println!(
        "{}",
        serde_json::to_string(&StepResult {
            secs,
            peak_kib,
            base_kib,
            items
        })?
    );
    Ok(())
}
