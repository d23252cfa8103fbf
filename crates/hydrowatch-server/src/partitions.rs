//! PostgreSQL's monthly partitions of the tables that grow with the fleet (messages by arrival,
//! forecasts by issue, actual values by hour): retention drops a month's partition instead of
//! deleting its rows one by one.
//!
//! Invariants: each partitioned table has a default partition, so that no row is ever refused
//! for want of a partition (a forecast of a backlog older than the oldest month, a month whose
//! partition could not be made); a month's partition is named `{table}_yYYYYmMM` and holds
//! `[first second of the month, first second of the next)`, UTC; one is made only while the
//! default partition holds none of its rows (else PostgreSQL refuses it: those rows stay in the
//! default partition, where retention deletes them by row). SQLite has none of this: its tables
//! are plain, and retention deletes rows.

use chrono::{Datelike, TimeZone, Utc};
use hydrowatch_core::time::DAY;

use crate::sql::{Arg, DbError, Sql};

/// The tables partitioned on PostgreSQL, each with the column (Unix seconds) it is partitioned
/// and retained by.
pub(crate) const PARTITIONED: [(&str, &str); 3] = [
    ("messages", "received_at"),
    ("forecasts", "issued_at"),
    ("actuals", "hour"),
];

/// Months made ahead of the current one: a message may be dated up to three days ahead of the
/// server's clock (the protocol's bound), and a server down over a month's turn finds its
/// partition there.
pub(crate) const MONTHS_AHEAD: u32 = 2;

/// The oldest month given a partition of its own: older rows (a database migrated with years of
/// history, a device's backlog) go to the default partition rather than into hundreds of small
/// ones.
const MONTHS_BEHIND_AT_MOST: i64 = 36;

/// A month, as (year, month 1..=12).
type Month = (i32, u32);

/// The month holding `t` (Unix seconds, UTC); None outside chrono's range.
fn month_of(t: i64) -> Option<Month> {
    let d = Utc.timestamp_opt(t, 0).single()?;
    Some((d.year(), d.month()))
}

/// The month after `m`.
fn next((year, month): Month) -> Month {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

/// The first second of `m`, Unix seconds.
fn start((year, month): Month) -> i64 {
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .map_or(i64::MAX, |d| d.timestamp())
}

/// The name of `table`'s partition of `m`.
fn name(table: &str, (year, month): Month) -> String {
    format!("{table}_y{year:04}m{month:02}")
}

/// The month a partition's name stands for (None: not a month's partition, e.g. the default).
fn parse_name(table: &str, partition: &str) -> Option<Month> {
    let rest = partition.strip_prefix(table)?.strip_prefix("_y")?;
    let (year, month) = rest.split_once('m')?;
    let (year, month) = (year.parse().ok()?, month.parse().ok()?);
    (year >= 1970 && (1..=12).contains(&month) && rest.len() == 7).then_some((year, month))
}

/// The months `table` has a partition of, oldest first.
fn months(c: &mut dyn Sql, table: &str) -> Result<Vec<Month>, DbError> {
    let mut months = c
        .rows(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = to_regclass(?1)",
            &[Arg::Text(Some(table))],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .filter_map(|p| parse_name(table, p))
        .collect::<Vec<_>>();
    months.sort_unstable();
    Ok(months)
}

/// Makes the missing monthly partitions of every partitioned table from the month of `from` (at
/// most [`MONTHS_BEHIND_AT_MOST`] months back) through [`MONTHS_AHEAD`] months after that of
/// `now`. Returns the partitions made.
pub(crate) fn make(c: &mut dyn Sql, from: i64, now: i64) -> Result<Vec<String>, DbError> {
    let from = from.clamp(now - MONTHS_BEHIND_AT_MOST * 31 * DAY, now);
    let (Some(first), Some(current)) = (month_of(from), month_of(now)) else {
        return Ok(Vec::new());
    };
    let mut last = current;
    for _ in 0..MONTHS_AHEAD {
        last = next(last);
    }
    let mut made = Vec::new();
    for (table, column) in PARTITIONED {
        let have = months(c, table)?;
        let mut month = first;
        while month <= last {
            let (from, to) = (start(month), start(next(month)));
            if !have.contains(&month) {
                let in_default = c.rows(
                    &format!(
                        "SELECT count(*) FROM {table}_default WHERE {column} >= ?1 AND {column} < ?2"
                    ),
                    &[Arg::Int(from), Arg::Int(to)],
                )?[0]
                    .int(0)?;
                let partition = name(table, month);
                if in_default == 0 {
                    c.batch(&format!(
                        "CREATE TABLE IF NOT EXISTS {partition} PARTITION OF {table} FOR VALUES FROM ({from}) TO ({to})"
                    ))?;
                    made.push(partition);
                } else {
                    tracing::warn!(
                        partition,
                        rows = in_default,
                        "not made: its rows are in {table}_default already (retention deletes them there by row)"
                    );
                }
            }
            month = next(month);
        }
    }
    Ok(made)
}

/// Drops the monthly partitions wholly before `cutoff` (Unix seconds) and deletes the default
/// partitions' rows before it. Returns the partitions dropped and the rows deleted.
pub(crate) fn drop_before(c: &mut dyn Sql, cutoff: i64) -> Result<(Vec<String>, u64), DbError> {
    let (mut dropped, mut deleted) = (Vec::new(), 0);
    for (table, column) in PARTITIONED {
        for month in months(c, table)? {
            if start(next(month)) <= cutoff {
                let partition = name(table, month);
                c.batch(&format!("DROP TABLE {partition}"))?;
                dropped.push(partition);
            }
        }
        deleted += c.exec(
            &format!("DELETE FROM {table}_default WHERE {column} < ?1"),
            &[Arg::Int(cutoff)],
        )?;
    }
    Ok((dropped, deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_named_and_read_back_and_bounded_in_utc() {
        assert_eq!(name("messages", (2026, 3)), "messages_y2026m03");
        assert_eq!(parse_name("messages", "messages_y2026m03"), Some((2026, 3)));
        assert_eq!(parse_name("messages", "messages_default"), None);
        assert_eq!(parse_name("messages", "messages_y2026m13"), None);
        assert_eq!(parse_name("actuals", "messages_y2026m03"), None);
        assert_eq!(next((2026, 12)), (2027, 1));
        // 2026-03-01T00:00:00Z and the month of the second before it.
        assert_eq!(start((2026, 3)), 1_772_323_200);
        assert_eq!(month_of(1_772_323_199), Some((2026, 2)));
        assert_eq!(month_of(1_772_323_200), Some((2026, 3)));
    }
}
