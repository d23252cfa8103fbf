//! Import: CSV files of readings into the device database, all in one transaction
//! (`hydrowatch import`; the demo and the storage benchmark call the same function).
//!
//! Invariants: either every row of every file is stored (or skipped as bad, when asked, and
//! counted), or nothing is and the database is unchanged; a conflicting value never replaces the
//! stored one; every skip and conflict is reported to the caller as it happens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hydrowatch_config::Config;
use hydrowatch_csv::{CsvError, ReadOptions, ReadingsCsv};
use hydrowatch_store::{BulkSummary, Outcome, SeriesId, Store, StoreError};

/// Why an import stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file is missing or a row is bad.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file's series is not configured.
    #[error(
        "{file}: series {series:?} is not in the configuration (configured: {configured}); fix the header or the configuration"
    )]
    UnknownSeries {
        /// The file.
        file: PathBuf,
        /// Its series.
        series: String,
        /// The configured series, comma-separated.
        configured: String,
    },
    /// Without a configuration, a file's series is new to the database but its name is close to
    /// one it has (a misspelt header would otherwise make a series of its own).
    #[error(
        "{file}: series {series:?} is not in the database, which has {existing:?}: a misspelt header? (to make it a new series, import with --new-series)"
    )]
    CloseToExisting {
        /// The file.
        file: PathBuf,
        /// Its series.
        series: String,
        /// The stored series it is close to.
        existing: String,
    },
}

/// Whether a new series name `new` looks like a misspelling of the stored `stored`: the same
/// but for case, or one letter left out or added (`flow_rat`, `flow_ratee`) in a name of four
/// characters or more. Not a digit (`pump1` beside `pump12`), nor a letter changed
/// (`pressure_c` beside `pressure_a`): those are a device's series of the same kind.
fn misspelling_of(new: &str, stored: &str) -> bool {
    if new.eq_ignore_ascii_case(stored) {
        return true;
    }
    let (short, long): (Vec<char>, Vec<char>) = if new.len() < stored.len() {
        (new.chars().collect(), stored.chars().collect())
    } else {
        (stored.chars().collect(), new.chars().collect())
    };
    if long.len() != short.len() + 1 || short.len() < 4 {
        return false;
    }
    (0..long.len()).any(|i| {
        !long[i].is_ascii_digit() && long[..i].iter().chain(&long[i + 1..]).eq(short.iter())
    })
}

impl ImportError {
    /// Whether `--skip-bad` would have let the import through (a bad row).
    pub fn is_row_error(&self) -> bool {
        matches!(self, ImportError::Csv(e) if e.is_row_error())
    }
}

/// What an import is asked to do.
#[derive(Debug, Clone)]
pub struct ImportRequest<'a> {
    /// The files, in order.
    pub files: &'a [PathBuf],
    /// How to read them (zone, series column, the clock's rule).
    pub options: ReadOptions,
    /// Skip bad rows (counting them) instead of importing nothing.
    pub skip_bad: bool,
    /// Only series of this configuration, with its units; `None`: any series, no unit.
    pub config: Option<&'a Config>,
    /// Without a configuration: make a series whose name is close to a stored one's (else that
    /// is refused as a likely misspelling).
    pub new_series: bool,
}

/// What happened during an import, as it happens (for a progress bar and messages).
#[derive(Debug)]
pub enum ImportEvent<'a> {
    /// A file is being read.
    File(&'a Path),
    /// Bytes of all files read so far.
    Progress(u64),
    /// A bad row was skipped.
    Skipped(&'a CsvError),
    /// A value differs from the stored one, which is kept.
    Conflict {
        /// The file.
        file: &'a Path,
        /// Its line.
        line: u64,
        /// The series.
        series: &'a str,
        /// The value in the file.
        value: f64,
        /// The value stored.
        stored: f64,
        /// Conflicts so far, this one included.
        count: u64,
    },
}

/// What an import stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    /// Files read.
    pub files: usize,
    /// Rows read.
    pub rows: u64,
    /// Empty cells.
    pub missing: u64,
    /// Bad rows skipped.
    pub skipped: u64,
    /// New readings by series.
    pub per_series: BTreeMap<String, u64>,
    /// Series the import made (new to the database).
    pub created: Vec<String>,
    /// New, duplicate and conflicting readings.
    pub summary: BulkSummary,
}

/// Imports `request.files` into `store` in one transaction, telling `on` what happens.
pub fn import(
    store: &mut Store,
    request: &ImportRequest<'_>,
    on: &mut dyn FnMut(ImportEvent<'_>),
) -> Result<ImportReport, ImportError> {
    let mut report = ImportReport {
        files: request.files.len(),
        ..ImportReport::default()
    };
    let mut stored: Vec<String> = store.series()?.into_iter().map(|s| s.name).collect();
    let mut created = Vec::new();
    let ((), summary) = store.bulk(|bulk| -> Result<(), ImportError> {
        let mut done_bytes = 0;
        for path in request.files {
            on(ImportEvent::File(path));
            let mut file = ReadingsCsv::open(path, &request.options)?;
            let names: Vec<String> = file.series().map(str::to_string).collect();
            let mut ids: Vec<SeriesId> = Vec::with_capacity(names.len());
            for name in &names {
                let unit = match request.config {
                    Some(config) => Some(config.series(name).map(|s| s.unit.as_str()).ok_or_else(
                        || {
                            ImportError::UnknownSeries {
                                file: path.clone(),
                                series: name.clone(),
                                configured: config
                                    .series
                                    .iter()
                                    .map(|s| s.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            }
                        },
                    )?),
                    None => {
                        if !stored.contains(name) {
                            let close = stored.iter().find(|s| misspelling_of(name, s));
                            if let (Some(existing), false) = (close, request.new_series) {
                                return Err(ImportError::CloseToExisting {
                                    file: path.clone(),
                                    series: name.clone(),
                                    existing: existing.clone(),
                                });
                            }
                            stored.push(name.clone());
                            created.push(name.clone());
                        }
                        None
                    }
                };
                ids.push(bulk.ensure_series(name, unit)?);
            }
            let mut new = vec![0u64; ids.len()];
            while let Some(row) = file.next_row() {
                let row = match row {
                    Ok(row) => row,
                    Err(e) if request.skip_bad && e.is_row_error() => {
                        on(ImportEvent::Skipped(&e));
                        report.skipped += 1;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                report.rows += 1;
                for (i, value) in row.values.iter().enumerate() {
                    let Some(value) = *value else {
                        report.missing += 1;
                        continue;
                    };
                    match bulk.insert(ids[i], row.ts, value)? {
                        Outcome::Inserted => new[i] += 1,
                        Outcome::Duplicate => {}
                        Outcome::Conflict { stored } => on(ImportEvent::Conflict {
                            file: path,
                            line: row.line,
                            series: &names[i],
                            value,
                            stored,
                            count: bulk.summary().conflicts,
                        }),
                    }
                }
                if report.rows.is_multiple_of(8192) {
                    on(ImportEvent::Progress(done_bytes + file.bytes_read()));
                }
            }
            done_bytes += file.bytes_read();
            on(ImportEvent::Progress(done_bytes));
            for (name, n) in names.iter().zip(new) {
                *report.per_series.entry(name.clone()).or_default() += n;
            }
        }
        Ok(())
    })?;
    report.summary = summary;
    report.created = created;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_left_out_is_a_misspelling_and_a_sibling_series_is_not() {
        for (new, stored) in [
            ("flow_rat", "flow_rate"),
            ("flow_ratee", "flow_rate"),
            ("Pressure", "pressure"),
            ("flowrate", "flow_rate"),
        ] {
            assert!(misspelling_of(new, stored), "{new} {stored}");
        }
        for (new, stored) in [
            ("pressure_c", "pressure_a"),
            ("pump12", "pump1"),
            ("p2", "p1"),
            ("tank_level", "pump_flow"),
            ("ab", "abc"),
        ] {
            assert!(!misspelling_of(new, stored), "{new} {stored}");
        }
    }
}
