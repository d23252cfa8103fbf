//! Export: the prototype's table, the readings of some series (or their hourly means) with each
//! hour's day-ahead forecast beside them (`hydrowatch export`).
//!
//! Invariants: rows are in time order, one per distinct time of any series; a cell is empty where
//! that series has no reading or no day-ahead forecast; times are local, to the second when a
//! reading has seconds.

use std::collections::HashMap;
use std::io::Write;

use chrono_tz::Tz;
use hydrowatch_core::time::{format_local, hour_start};
use hydrowatch_core::{Reading, Timestamp};
use hydrowatch_store::{SeriesInfo, Store, StoreError};

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output could not be written.
    #[error("cannot write the table: {0}")]
    Write(#[from] std::io::Error),
}

/// Writes `time,<series...>,<series>_predict...` and returns the number of rows.
pub fn write_table(
    store: &Store,
    series: &[SeriesInfo],
    from: Timestamp,
    to: Timestamp,
    tz: Tz,
    hourly: bool,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let phase = store.hour_phase();
    let mut columns: Vec<Vec<Reading>> = Vec::with_capacity(series.len());
    let mut predicts: Vec<HashMap<Timestamp, f64>> = Vec::with_capacity(series.len());
    // The bucket holding `from` (guarding the open-ended default against overflow).
    let first_hour = hour_start(from.max(Timestamp::MIN + 3600), phase);
    for s in series {
        columns.push(if hourly {
            store
                .hourly(s.id, first_hour, to)?
                .into_iter()
                .map(|h| Reading {
                    ts: h.hour,
                    value: h.mean,
                })
                .filter(|r| r.ts >= from)
                .collect()
        } else {
            store.readings(s.id, from, to)?
        });
        predicts.push(
            store
                .day_ahead(s.id, first_hour, to)?
                .into_iter()
                .map(|d| (d.point.target, d.point.value))
                .collect(),
        );
    }
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    writeln!(
        out,
        "time,{},{}",
        names.join(","),
        names
            .iter()
            .map(|n| format!("{n}_predict"))
            .collect::<Vec<_>>()
            .join(",")
    )?;

    // Merge the sorted columns by time.
    let mut pos = vec![0usize; columns.len()];
    let mut rows = 0;
    let mut line = String::with_capacity(128);
    while let Some(ts) = columns
        .iter()
        .zip(&pos)
        .filter_map(|(c, &p)| c.get(p).map(|r| r.ts))
        .min()
    {
        line.clear();
        line.push_str(&format_local(ts, tz));
        if ts % 60 != 0 {
            line.push_str(&format!(":{:02}", ts.rem_euclid(60)));
        }
        for (c, p) in columns.iter().zip(pos.iter_mut()) {
            line.push(',');
            if let Some(r) = c.get(*p).filter(|r| r.ts == ts) {
                line.push_str(&r.value.to_string());
                *p += 1;
            }
        }
        let bucket = hour_start(ts, phase);
        for p in &predicts {
            line.push(',');
            if let Some(v) = p.get(&bucket) {
                line.push_str(&v.to_string());
            }
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
        rows += 1;
    }
    Ok(rows)
}
