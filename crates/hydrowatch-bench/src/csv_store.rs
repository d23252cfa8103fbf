//! The CSV contender of `hydrowatch bench storage`: the prototype's layout (`time,flow_rate,
//! pressure`, one row a minute) read with the same parser as `hydrowatch import`, the newest rows
//! read by seeking back from the end of the file, day reads that stop at the end of the day.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::Context as _;
use hydrowatch_core::Timestamp;
use hydrowatch_core::time::{HOUR, hour_start};
use hydrowatch_csv::{ReadOptions, ReadingsCsv};

use hydrowatch_sim::SERIES;

/// The CSV store's bulk load: parse and check every row like an import, write the store file.
pub(super) fn bulk_load_csv(source: &Path, store: &Path) -> crate::Result<u64> {
    let options = ReadOptions {
        timezone: chrono_tz::Asia::Seoul,
        series: None,
        clock: None,
    };
    let mut file = ReadingsCsv::open(source, &options)?;
    let mut out = BufWriter::new(File::create(store)?);
    writeln!(out, "time,{},{}", SERIES[0], SERIES[1])?;
    let tz = chrono_tz::Asia::Seoul;
    let mut n = 0;
    while let Some(row) = file.next_row() {
        let row = row?;
        write!(out, "{}", hydrowatch_core::time::format_local(row.ts, tz))?;
        for v in row.values {
            match v {
                Some(v) => {
                    write!(out, ",{v}")?;
                    n += 1;
                }
                None => write!(out, ",")?,
            }
        }
        writeln!(out)?;
    }
    let f = out.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    Ok(n)
}

pub(super) fn open_store_csv(path: &Path) -> crate::Result<ReadingsCsv<BufReader<File>>> {
    Ok(ReadingsCsv::open(
        path,
        &ReadOptions {
            timezone: chrono_tz::Asia::Seoul,
            series: None,
            clock: None,
        },
    )?)
}

/// First and last time of the CSV store.
pub(super) fn csv_span(path: &Path) -> crate::Result<(Timestamp, Timestamp)> {
    let mut f = open_store_csv(path)?;
    let first = f.next_row().context("empty CSV store")??.ts;
    let lines = tail_lines(path, 1)?;
    let last = hydrowatch_core::LocalTimeParser::new(chrono_tz::Asia::Seoul)
        .parse(lines[0].split(',').next().unwrap_or_default())?;
    Ok((first, last))
}

/// The last `n` lines of a file, read backwards from its end in blocks.
pub(super) fn tail_lines(path: &Path, n: usize) -> crate::Result<Vec<String>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut buf = Vec::new();
    let mut pos = len;
    while pos > 0 && buf.iter().filter(|&&c| c == b'\n').count() <= n {
        let step = pos.min(8192);
        pos -= step;
        f.seek(SeekFrom::Start(pos))?;
        let mut block = vec![0; step as usize];
        f.read_exact(&mut block)?;
        block.extend_from_slice(&buf);
        buf = block;
    }
    let text = String::from_utf8(buf).context("the CSV store is not UTF-8")?;
    let lines: Vec<&str> = text.lines().collect();
    Ok(lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect())
}

/// The newest `n` flow readings of the CSV store; returns how many were parsed.
pub(super) fn csv_latest(path: &Path, n: usize) -> crate::Result<u64> {
    let mut parser = hydrowatch_core::LocalTimeParser::new(chrono_tz::Asia::Seoul);
    let mut got = Vec::with_capacity(n);
    for line in tail_lines(path, n)? {
        let mut f = line.split(',');
        let ts = parser.parse(f.next().unwrap_or_default())?;
        let v: f64 = f
            .next()
            .unwrap_or_default()
            .parse()
            .context("a value of the CSV store")?;
        got.push((ts, v));
    }
    Ok(got.len() as u64)
}

/// Reads both series for `from <= ts < to` (stopping after `to`); returns the values read.
pub(super) fn csv_read(path: &Path, from: Timestamp, to: Timestamp) -> crate::Result<u64> {
    let mut f = open_store_csv(path)?;
    let mut cols: [Vec<(Timestamp, f64)>; 2] = [Vec::new(), Vec::new()];
    while let Some(row) = f.next_row() {
        let row = row?;
        if row.ts >= to {
            break;
        }
        if row.ts >= from {
            for (c, v) in cols.iter_mut().zip(row.values) {
                if let Some(v) = v {
                    c.push((row.ts, *v));
                }
            }
        }
    }
    Ok((cols[0].len() + cols[1].len()) as u64)
}

/// Hourly means of the flow series from the CSV store; returns the number of hours.
pub(super) fn csv_hourly(path: &Path) -> crate::Result<u64> {
    let mut f = open_store_csv(path)?;
    let mut hours: Vec<(Timestamp, f64, u32)> = Vec::new();
    while let Some(row) = f.next_row() {
        let row = row?;
        if let Some(v) = row.values[0] {
            let h = hour_start(row.ts, 0);
            match hours.last_mut() {
                Some(last) if last.0 == h => {
                    last.1 += v;
                    last.2 += 1;
                }
                _ => hours.push((h, v, 1)),
            }
        }
    }
    let means: Vec<f64> = hours.iter().map(|(_, s, n)| s / f64::from(*n)).collect();
    debug_assert!(hours.iter().all(|h| h.0 % HOUR == 0));
    Ok(means.len() as u64)
}
