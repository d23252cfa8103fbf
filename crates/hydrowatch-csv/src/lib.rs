//! Readings in CSV files, read as a stream with exact errors.
//!
//! Two layouts, told apart by the header:
//! - narrow, the prototype's `time,value`: one series, named by the caller (`--series NAME`);
//! - wide, `time,flow_rate,pressure,...`: one series per further column, named by its header.
//!
//! The first column is the time (header `time`, `timestamp` or `datetime`), in any form
//! [`hydrowatch_core::time`] accepts; times without offset are local times in the zone given,
//! with daylight-saving gaps refused and repeated hours resolved by file order.
//!
//! An empty cell (or `NaN`, `NA`, `null`) is a missing value: it yields `None`, never a zero,
//! and the caller counts it. Anything else that is not a finite number is an error naming the
//! file, line, column and value. A bad row is returned as an error and reading goes on with the
//! next row, so a caller may stop (the default) or skip and report (`--skip-bad`).
//!
//! Why not the `csv` crate: csv 1.4 reports wrong line numbers for rows after a blank line, and
//! for every row of a CRLF file (the first data row of a Windows export is "line 1"), and an
//! error that names the wrong line sends an engineer to the wrong row. Readings files are one
//! record per line, so [`split_line`] splits lines itself (RFC 4180 quoting within a line) and
//! counts lines exactly.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use chrono_tz::Tz;
use hydrowatch_core::{
    LocalTimeParser, TimeError, Timestamp, check_series_name, from_the_future, prefix,
};

mod forecasts;
mod split;

pub use forecasts::{ForecastRow, MAX_FORECASTS_BYTES, read_forecasts, write_forecasts};
use split::{Fields, split_line};

/// Why a file, or one of its rows, could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The file could not be opened or read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// The file.
        file: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The header is not a layout this reader knows.
    #[error("{file}, line 1 (header): {reason}")]
    Header {
        /// The file.
        file: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// The file is not lines of text: a line too long, or lines that end in a lone CR.
    #[error("{file}, line {line}: {reason}")]
    Lines {
        /// The file.
        file: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The row is not well-formed CSV, or has the wrong number of fields.
    #[error("{file}, line {line}: {reason}")]
    Row {
        /// The file.
        file: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The time of a row could not be understood.
    #[error("{file}, line {line}, column 1 (`{column}`): {source}: {value:?}")]
    Time {
        /// The file.
        file: String,
        /// 1-based line number.
        line: u64,
        /// Header of the time column.
        column: String,
        /// The text found.
        value: String,
        /// Why it is not a time.
        source: TimeError,
    },
    /// The row's time lies ahead of the clock (see [`ReadOptions::clock`]).
    #[error("{file}, line {line}, column 1 (`{column}`): {why}")]
    Future {
        /// The file.
        file: String,
        /// 1-based line number.
        line: u64,
        /// Header of the time column.
        column: String,
        /// How far ahead, of which clock.
        why: String,
    },
    /// A value is neither a number nor a missing-value marker.
    #[error("{file}, line {line}, column {index} (`{column}`): not a finite number: {value:?}")]
    Value {
        /// The file.
        file: String,
        /// 1-based line number.
        line: u64,
        /// 1-based column number.
        index: usize,
        /// Header of the column (the series).
        column: String,
        /// The text found.
        value: String,
    },
}

impl CsvError {
    /// True for errors confined to one row (reading can go on), false for errors about the
    /// whole file.
    pub fn is_row_error(&self) -> bool {
        matches!(
            self,
            CsvError::Row { .. }
                | CsvError::Time { .. }
                | CsvError::Future { .. }
                | CsvError::Value { .. }
        )
    }
}

/// How to read a file.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Zone of times written without an offset.
    pub timezone: Tz,
    /// Narrow files: the series the `value` column holds. Wide files: read only this column.
    pub series: Option<String>,
    /// Readings for the device database: the clock now and the seconds a reading may lie ahead
    /// of it; a later row is refused as a reading from the future, like a live one. `None` for
    /// files analysed as they are (`detect --input`, `train`).
    pub clock: Option<(Timestamp, i64)>,
}

/// The longest line read: far more than a row of hundreds of series, far less than a file
/// without line breaks.
pub const MAX_LINE_BYTES: usize = 64 << 10;

/// One row: its time and the value of each selected series (`None`: missing).
#[derive(Debug, PartialEq)]
pub struct Row<'a> {
    /// 1-based line number in the file.
    pub line: u64,
    /// The row's time.
    pub ts: Timestamp,
    /// The row's time as the file writes it (trimmed), for output that must join back to it.
    pub time: &'a str,
    /// One entry per series of [`ReadingsCsv::series`], in that order.
    pub values: &'a [Option<f64>],
}

/// A streaming reader of one readings file.
pub struct ReadingsCsv<R> {
    file: String,
    reader: R,
    line: u64,
    bytes: u64,
    raw: Vec<u8>,
    fields: Fields,
    time_header: String,
    /// (field index, series name) of each selected column.
    columns: Vec<(usize, String)>,
    width: usize,
    parser: LocalTimeParser,
    values: Vec<Option<f64>>,
    clock: Option<(Timestamp, i64)>,
    tz: Tz,
}

impl ReadingsCsv<BufReader<File>> {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path, options: &ReadOptions) -> Result<Self, CsvError> {
        let file = path.display().to_string();
        let f = File::open(path).map_err(|source| CsvError::Io {
            file: file.clone(),
            source,
        })?;
        ReadingsCsv::from_reader(BufReader::with_capacity(1 << 16, f), &file, options)
    }
}

impl<R: BufRead> ReadingsCsv<R> {
    /// Reads the header from `reader`; `file` names the source in errors.
    pub fn from_reader(reader: R, file: &str, options: &ReadOptions) -> Result<Self, CsvError> {
        let header_err = |reason: String| CsvError::Header {
            file: file.to_string(),
            reason,
        };
        let mut this = ReadingsCsv {
            file: file.to_string(),
            reader,
            line: 0,
            bytes: 0,
            raw: Vec::with_capacity(256),
            fields: Fields::default(),
            time_header: String::new(),
            columns: Vec::new(),
            width: 0,
            parser: LocalTimeParser::new(options.timezone),
            values: Vec::new(),
            clock: options.clock,
            tz: options.timezone,
        };
        let mut headers = Vec::new();
        if this.read_line()? {
            split_line(&this.raw, &mut this.fields).map_err(|e| header_err(e.to_string()))?;
            for i in 0..this.fields.len() {
                let h = String::from_utf8_lossy(this.fields.get(i));
                headers.push(
                    if i == 0 {
                        h.trim_start_matches('\u{feff}')
                    } else {
                        &h
                    }
                    .trim()
                    .to_string(),
                );
            }
        }
        let Some(time_header) = headers.first().filter(|h| !h.is_empty()) else {
            return Err(header_err("the file is empty: expected a header such as `time,value` or `time,flow_rate,pressure`".into()));
        };
        if !["time", "timestamp", "datetime"].contains(&time_header.to_ascii_lowercase().as_str()) {
            return Err(header_err(format!(
                "the first column must be the time, headed `time` (found {:?}); expected `time,value` or `time,flow_rate,pressure,...`",
                prefix(time_header)
            )));
        }
        if headers.len() < 2 {
            return Err(header_err(
                "no value column: expected `time,value` or `time,flow_rate,pressure,...`".into(),
            ));
        }
        let narrow = headers.len() == 2 && headers[1].eq_ignore_ascii_case("value");
        let columns: Vec<(usize, String)> = if narrow {
            let Some(name) = &options.series else {
                return Err(header_err(
                    "a `time,value` file does not say which series it holds: name it with --series NAME (e.g. --series flow_rate)".into(),
                ));
            };
            vec![(1, name.clone())]
        } else {
            for (i, h) in headers.iter().enumerate().skip(1) {
                check_series_name(h).map_err(|e| header_err(format!("column {} : {e}", i + 1)))?;
                if headers[1..i].contains(h) {
                    return Err(header_err(format!(
                        "column {} repeats the series {h:?}",
                        i + 1
                    )));
                }
            }
            let all = headers
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, h)| (i, h.clone()));
            match &options.series {
                None => all.collect(),
                Some(want) => {
                    let picked: Vec<_> = all.filter(|(_, h)| h == want).collect();
                    if picked.is_empty() {
                        return Err(header_err(format!(
                            "--series {want}: no such column (the file has: {})",
                            prefix(&headers[1..].join(", "))
                        )));
                    }
                    picked
                }
            }
        };
        if let Some(name) = &options.series {
            check_series_name(name).map_err(header_err)?;
        }
        this.time_header = time_header.clone();
        this.values = vec![None; columns.len()];
        this.columns = columns;
        this.width = headers.len();
        Ok(this)
    }

    /// Reads the next line into `raw` without its line break; false at the end of the file.
    /// A line over [`MAX_LINE_BYTES`] is an error about the whole file (no row could be found
    /// in it), as is a file whose lines end in a lone CR.
    fn read_line(&mut self) -> Result<bool, CsvError> {
        self.raw.clear();
        let n = Read::take(self.reader.by_ref(), MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut self.raw)
            .map_err(|source| CsvError::Io {
                file: self.file.clone(),
                source,
            })?;
        if n == 0 {
            return Ok(false);
        }
        self.bytes += n as u64;
        self.line += 1;
        if self.raw.last() != Some(&b'\n') && n > MAX_LINE_BYTES {
            return Err(CsvError::Lines {
                file: self.file.clone(),
                line: self.line,
                reason: format!(
                    "longer than {} KB: not a readings file (or its line breaks are missing)",
                    MAX_LINE_BYTES >> 10
                ),
            });
        }
        while matches!(self.raw.last(), Some(b'\n' | b'\r')) {
            self.raw.pop();
        }
        if self.raw.contains(&b'\r') {
            return Err(CsvError::Lines {
                file: self.file.clone(),
                line: self.line,
                reason: "a carriage return (CR) inside the line: the file's lines end in CR alone (an old Mac export); convert them to LF or CRLF".into(),
            });
        }
        Ok(true)
    }

    /// The series of the selected columns, in the order of [`Row::values`].
    pub fn series(&self) -> impl ExactSizeIterator<Item = &str> {
        self.columns.iter().map(|(_, name)| name.as_str())
    }

    /// Bytes consumed so far (for progress bars).
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The next row; `None` at the end of the file. After a row error, the next call goes on
    /// with the following row.
    pub fn next_row(&mut self) -> Option<Result<Row<'_>, CsvError>> {
        // Blank lines are neither data nor errors.
        loop {
            match self.read_line() {
                Ok(false) => return None,
                Ok(true) if self.raw.iter().all(u8::is_ascii_whitespace) => continue,
                Ok(true) => break,
                Err(e) => return Some(Err(e)),
            }
        }
        let line = self.line;
        let row_err = |reason: String| CsvError::Row {
            file: self.file.clone(),
            line,
            reason,
        };
        if let Err(reason) = split_line(&self.raw, &mut self.fields) {
            return Some(Err(row_err(reason.to_string())));
        }
        if self.fields.len() != self.width {
            return Some(Err(row_err(format!(
                "expected {} fields like the header, found {}",
                self.width,
                self.fields.len()
            ))));
        }
        let time_text = String::from_utf8_lossy(self.fields.get(0));
        let ts = match self.parser.parse(&time_text) {
            Ok(ts) => ts,
            Err(source) => {
                return Some(Err(CsvError::Time {
                    file: self.file.clone(),
                    line,
                    column: self.time_header.clone(),
                    value: prefix(&time_text),
                    source,
                }));
            }
        };
        if let Some((now, allowance)) = self.clock
            && let Some(why) = from_the_future(ts, now, allowance, self.tz)
        {
            return Some(Err(CsvError::Future {
                file: self.file.clone(),
                line,
                column: self.time_header.clone(),
                why,
            }));
        }
        for (slot, (index, name)) in self.values.iter_mut().zip(&self.columns) {
            match parse_value(self.fields.get(*index)) {
                Ok(v) => *slot = v,
                Err(()) => {
                    return Some(Err(CsvError::Value {
                        file: self.file.clone(),
                        line,
                        index: index + 1,
                        column: name.clone(),
                        value: prefix(&String::from_utf8_lossy(self.fields.get(*index))),
                    }));
                }
            }
        }
        Some(Ok(Row {
            line,
            ts,
            // It parsed as a time, so it is ASCII.
            time: std::str::from_utf8(self.fields.get(0)).map_or("", str::trim),
            values: &self.values,
        }))
    }
}

/// A cell: a finite number, or `None` for empty / `NaN` / `NA` / `null`.
fn parse_value(field: &[u8]) -> Result<Option<f64>, ()> {
    let text = std::str::from_utf8(field).map_err(|_| ())?.trim();
    if text.is_empty()
        || ["nan", "na", "null"]
            .iter()
            .any(|m| text.eq_ignore_ascii_case(m))
    {
        return Ok(None);
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(series: Option<&str>) -> ReadOptions {
        ReadOptions {
            timezone: chrono_tz::UTC,
            series: series.map(str::to_string),
            clock: None,
        }
    }

    /// One row as (line, ts, values), or its error text.
    type RowResult = Result<(u64, Timestamp, Vec<Option<f64>>), String>;

    /// Every row, or the error text of the header.
    fn read(text: &str, o: &ReadOptions) -> Result<Vec<RowResult>, String> {
        let mut r =
            ReadingsCsv::from_reader(text.as_bytes(), "f.csv", o).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(row) = r.next_row() {
            out.push(
                row.map(|r| (r.line, r.ts, r.values.to_vec()))
                    .map_err(|e| e.to_string()),
            );
        }
        Ok(out)
    }

    #[test]
    fn narrow_file_with_missing_values() {
        let rows = read("time,value\n2024-07-09 0:01,227\n2024-07-09 0:02,\n2024-07-09 0:03,NaN\n2024-07-09 0:04, 3.5e1 \n", &opts(Some("flow_rate"))).unwrap();
        let rows: Vec<_> = rows.into_iter().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].0, 2);
        assert_eq!(rows[0].2, vec![Some(227.0)]);
        assert_eq!(rows[1].2, vec![None], "empty is missing, not zero");
        assert_eq!(rows[2].2, vec![None]);
        assert_eq!(rows[3].2, vec![Some(35.0)]);
        assert_eq!(rows[1].1 - rows[0].1, 60);
    }

    #[test]
    fn narrow_file_needs_a_series_name() {
        let e = read("time,value\n", &opts(None)).unwrap_err();
        assert!(e.contains("f.csv") && e.contains("--series"), "{e}");
    }

    #[test]
    fn wide_file_and_column_selection() {
        let text = "\u{feff}time,flow_rate,pressure\n2024-07-09T00:01:00+09:00,10,3.1\n2024-07-09T00:02:00+09:00,,3.0\n";
        let mut r = ReadingsCsv::from_reader(text.as_bytes(), "w.csv", &opts(None)).unwrap();
        assert_eq!(r.series().collect::<Vec<_>>(), ["flow_rate", "pressure"]);
        let row = r.next_row().unwrap().unwrap();
        assert_eq!(row.values, &[Some(10.0), Some(3.1)]);
        let row = r.next_row().unwrap().unwrap();
        assert_eq!(row.values, &[None, Some(3.0)]);
        assert!(r.next_row().is_none());

        let rows = read(text, &opts(Some("pressure"))).unwrap();
        assert_eq!(rows[1].as_ref().unwrap().2, vec![Some(3.0)]);
        let e = read(text, &opts(Some("level"))).unwrap_err();
        assert!(
            e.contains("--series level") && e.contains("flow_rate, pressure"),
            "{e}"
        );
    }

    #[test]
    fn header_errors_are_explained() {
        for (text, needle) in [
            ("", "empty"),
            ("when,value\n", "first column must be the time"),
            ("time\n", "no value column"),
            ("time,flow rate\n", "flow rate"),
            ("time,a,a\n", "repeats"),
        ] {
            let e = read(text, &opts(None)).unwrap_err();
            assert!(e.contains("line 1") && e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn bad_rows_name_line_column_and_value_and_reading_goes_on() {
        let text = "time,flow_rate,pressure\n\
                    2024-07-09 00:01,1,2\n\
                    2024-07-09 00:02,abc,2\n\
                    2024-07-09 25:00,1,2\n\
                    2024-07-09 00:04,1\n\
                    2024-07-09 00:05,inf,2\n\
                    \n\
                    2024-07-09 00:06,1,2\n";
        let rows = read(text, &opts(None)).unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(
            read(&text.replace('\n', "\r\n"), &opts(None)).unwrap(),
            rows,
            "CRLF reads the same"
        );
        assert!(rows[0].is_ok());
        let e = rows[1].as_ref().unwrap_err();
        assert_eq!(
            e,
            "f.csv, line 3, column 2 (`flow_rate`): not a finite number: \"abc\""
        );
        let e = rows[2].as_ref().unwrap_err();
        assert!(
            e.starts_with("f.csv, line 4, column 1 (`time`): not a valid date")
                && e.ends_with("\"2024-07-09 25:00\""),
            "{e}"
        );
        let e = rows[3].as_ref().unwrap_err();
        assert_eq!(
            e,
            "f.csv, line 5: expected 3 fields like the header, found 2"
        );
        assert!(
            rows[4]
                .as_ref()
                .unwrap_err()
                .contains("line 6, column 2 (`flow_rate`)")
        );
        assert_eq!(
            rows[5].as_ref().unwrap().0,
            8,
            "blank line skipped, numbering kept"
        );
    }

    #[test]
    fn rows_ahead_of_the_clock_are_refused_when_a_clock_is_given() {
        let text = "time,value\n2026-11-30 11:00,1\n2062-11-30 11:00,2\n1969-12-31 23:00,3\n";
        let mut o = opts(Some("flow"));
        let now = 1_796_040_000; // 2026-11-30 12:00 UTC
        o.clock = Some((now, 60));
        let rows = read(text, &o).unwrap();
        assert!(rows[0].is_ok());
        let e = rows[1].as_ref().unwrap_err();
        assert!(
            e.starts_with("f.csv, line 3, column 1 (`time`): 2062-11-30 11:00 is ")
                && e.contains("from the future"),
            "{e}"
        );
        assert!(
            rows[2].as_ref().unwrap_err().contains("outside 1970-2199"),
            "{:?}",
            rows[2]
        );
        // Files analysed as they are have no clock: only the span applies.
        let rows = read(text, &opts(Some("flow"))).unwrap();
        assert!(rows[1].is_ok());
    }

    #[test]
    fn errors_echo_a_short_prefix_of_a_long_value() {
        let long = "9".repeat(10 << 10) + "x";
        let rows = read(
            &format!("time,value\n2024-07-09 00:01,{long}\n"),
            &opts(Some("flow")),
        )
        .unwrap();
        let e = rows[0].as_ref().unwrap_err();
        assert!(
            e.len() < 200 && e.ends_with("...\""),
            "{} bytes: {}",
            e.len(),
            &e[..100]
        );
    }

    #[test]
    fn lines_too_long_or_ending_in_cr_alone_are_named() {
        let long = format!(
            "time,value\n2024-07-09 00:01,{}\n",
            "1".repeat(MAX_LINE_BYTES)
        );
        let rows = read(&long, &opts(Some("flow"))).unwrap();
        let e = rows[0].as_ref().unwrap_err();
        assert!(e.starts_with("f.csv, line 2: longer than 64 KB"), "{e}");
        let e = read(
            "time,value\r2024-07-09 00:01,1\r2024-07-09 00:02,2\r",
            &opts(Some("flow")),
        )
        .unwrap_err();
        assert!(e.contains("end in CR alone"), "{e}");
    }

    #[test]
    fn quoted_fields() {
        let mut f = Fields::default();
        split_line(br#""2024-07-09 00:01","1.5",,"a ""b"",c""#, &mut f).unwrap();
        let got: Vec<_> = (0..f.len())
            .map(|i| String::from_utf8_lossy(f.get(i)).into_owned())
            .collect();
        assert_eq!(got, ["2024-07-09 00:01", "1.5", "", "a \"b\",c"]);
        assert!(split_line(br#""open"#, &mut f).is_err());
        assert!(split_line(br#""a"b,c"#, &mut f).is_err());
        let rows = read(
            "\"time\",\"value\"\n\"2024-07-09 00:01\",\"7\"\n",
            &opts(Some("x")),
        )
        .unwrap();
        assert_eq!(rows[0].as_ref().unwrap().2, vec![Some(7.0)]);
        let rows = read("time,value\n\"2024-07-09 00:01,7\n", &opts(Some("x"))).unwrap();
        assert!(
            rows[0]
                .as_ref()
                .unwrap_err()
                .contains("line 2: a quoted field is not closed")
        );
    }

    #[test]
    fn local_times_across_both_daylight_saving_changes() {
        let o = ReadOptions {
            timezone: chrono_tz::Europe::Rome,
            series: Some("inflow".into()),
            clock: None,
        };
        let text = "time,value\n2021-03-28 01:00,1\n2021-03-28 03:00,2\n2021-10-31 01:00,3\n2021-10-31 02:00,4\n2021-10-31 02:00,5\n2021-10-31 03:00,6\n";
        let rows: Vec<_> = read(text, &o)
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let ts: Vec<_> = rows.iter().map(|r| r.1).collect();
        assert_eq!(ts[1] - ts[0], 3600, "spring: 01:00 -> 03:00 is one hour");
        assert_eq!(ts[3] - ts[2], 3600);
        assert_eq!(ts[4] - ts[3], 3600, "the repeated 02:00 is a distinct hour");
        assert_eq!(ts[5] - ts[4], 3600);
        let e = read("time,value\n2021-03-28 02:00,1\n", &o)
            .unwrap()
            .remove(0)
            .unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("does not exist") && e.contains("Europe/Rome"),
            "{e}"
        );
    }
}
