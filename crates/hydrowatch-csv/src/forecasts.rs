//! Forecasts in CSV files: `origin,time,value[,lower,upper]`, one row per forecast hour, many
//! origins in one file. What `hydrowatch backtest --write-forecasts` writes and what
//! `--external NAME=DIR` reads (another program's forecasts, scored beside ours).
//!
//! Times are in any form [`hydrowatch_core::time`] accepts; RFC 3339 with an offset is
//! unambiguous and what the writers here use; times without an offset are local in the zone
//! given. Every value must be a finite number (`lower` and `upper` may be empty); a bad row is an
//! error naming the file, line, column and a short prefix of the text.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use chrono_tz::Tz;
use hydrowatch_core::{LocalTimeParser, Timestamp};

use crate::{CsvError, Fields, parse_value, prefix, split_line};

/// Largest forecasts file read (a year of weekly origins of 168 hours is about 0.7 MB).
pub const MAX_FORECASTS_BYTES: u64 = 64 << 20;

/// One forecast hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastRow {
    /// 1-based line in the file.
    pub line: u64,
    /// The forecast's origin (its first hour).
    pub origin: Timestamp,
    /// The hour forecast.
    pub time: Timestamp,
    /// The forecast value.
    pub value: f64,
    /// 10% bound, if given.
    pub lower: Option<f64>,
    /// 90% bound, if given.
    pub upper: Option<f64>,
}

/// Writes `rows` as the forecasts file `path` (`origin,time,value,lower,upper`, times in RFC
/// 3339 with their offset in `tz`; a row without bounds leaves them empty): what
/// [`read_forecasts`] reads back.
pub fn write_forecasts(path: &Path, rows: &[ForecastRow], tz: Tz) -> Result<(), CsvError> {
    let io = |source| CsvError::Io {
        file: path.display().to_string(),
        source,
    };
    let rfc = |ts: Timestamp| {
        chrono::DateTime::from_timestamp(ts, 0)
            .map(|t| t.with_timezone(&tz).to_rfc3339())
            .unwrap_or_default()
    };
    let bound = |b: Option<f64>| b.map_or_else(String::new, |b| b.to_string());
    let mut out = BufWriter::new(File::create(path).map_err(io)?);
    writeln!(out, "origin,time,value,lower,upper").map_err(io)?;
    for r in rows {
        writeln!(
            out,
            "{},{},{},{},{}",
            rfc(r.origin),
            rfc(r.time),
            r.value,
            bound(r.lower),
            bound(r.upper)
        )
        .map_err(io)?;
    }
    out.flush().map_err(io)
}

/// Reads every row of the forecasts file `path`.
pub fn read_forecasts(path: &Path, tz: Tz) -> Result<Vec<ForecastRow>, CsvError> {
    let file = path.display().to_string();
    let io = |source| CsvError::Io {
        file: file.clone(),
        source,
    };
    let f = File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    if size > MAX_FORECASTS_BYTES {
        return Err(CsvError::Header {
            file,
            reason: format!(
                "the file has {size} bytes, more than the {MAX_FORECASTS_BYTES} a forecasts file may have"
            ),
        });
    }
    let mut reader = BufReader::new(f);
    let mut raw = Vec::new();
    let mut fields = Fields::default();
    let (mut origins, mut times) = (LocalTimeParser::new(tz), LocalTimeParser::new(tz));
    let mut rows = Vec::new();
    let mut line = 0u64;
    let mut width = 0;
    loop {
        raw.clear();
        if reader.read_until(b'\n', &mut raw).map_err(io)? == 0 {
            break;
        }
        line += 1;
        while matches!(raw.last(), Some(b'\n' | b'\r')) {
            raw.pop();
        }
        let row_err = |reason: String| CsvError::Row {
            file: file.clone(),
            line,
            reason,
        };
        split_line(&raw, &mut fields).map_err(|e| row_err(e.into()))?;
        if line == 1 {
            let headers: Vec<String> = (0..fields.len())
                .map(|i| {
                    String::from_utf8_lossy(fields.get(i))
                        .trim_start_matches('\u{feff}')
                        .trim()
                        .to_ascii_lowercase()
                })
                .collect();
            let known = [
                &["origin", "time", "value"][..],
                &["origin", "time", "value", "lower", "upper"][..],
            ];
            if !known.iter().any(|k| headers == *k) {
                return Err(CsvError::Header {
                    file,
                    reason: format!(
                        "expected `origin,time,value` or `origin,time,value,lower,upper`, found {:?}",
                        prefix(&headers.join(","))
                    ),
                });
            }
            width = headers.len();
            continue;
        }
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if fields.len() != width {
            return Err(row_err(format!(
                "{} fields, the header has {width}",
                fields.len()
            )));
        }
        let text = |i: usize| String::from_utf8_lossy(fields.get(i)).into_owned();
        let time = |parser: &mut LocalTimeParser, i: usize, column: &str| {
            parser.parse(&text(i)).map_err(|source| CsvError::Time {
                file: file.clone(),
                line,
                column: column.into(),
                value: prefix(&text(i)),
                source,
            })
        };
        let number = |i: usize, column: &str| {
            parse_value(fields.get(i)).map_err(|()| CsvError::Value {
                file: file.clone(),
                line,
                index: i + 1,
                column: column.into(),
                value: prefix(&text(i)),
            })
        };
        let origin = time(&mut origins, 0, "origin")?;
        let at = time(&mut times, 1, "time")?;
        let value = number(2, "value")?.ok_or_else(|| CsvError::Value {
            file: file.clone(),
            line,
            index: 3,
            column: "value".into(),
            value: String::new(),
        })?;
        let (lower, upper) = if width == 5 {
            (number(3, "lower")?, number(4, "upper")?)
        } else {
            (None, None)
        };
        rows.push(ForecastRow {
            line,
            origin,
            time: at,
            value,
            lower,
            upper,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn rows_with_and_without_bands_and_clear_errors() {
        let f = file(
            "origin,time,value,lower,upper\n2022-07-18T00:00:00+02:00,2022-07-18T00:00:00+02:00,5.5,5,6\n2022-07-18 00:00,2022-07-18 01:00,6,,\n",
        );
        let rows = read_forecasts(f.path(), chrono_tz::Europe::Rome).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].origin, rows[1].origin);
        assert_eq!(rows[1].time - rows[0].time, 3600);
        assert_eq!((rows[0].lower, rows[1].upper), (Some(5.0), None));
        let bad = file("origin,time,value\n2022-07-18 00:00,2022-07-18 01:00,lots\n");
        let e = read_forecasts(bad.path(), chrono_tz::UTC)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2, column 3 (`value`)") && e.contains("lots"),
            "{e}"
        );
        let header = file("time,value\n");
        let e = read_forecasts(header.path(), chrono_tz::UTC)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 1") && e.contains("origin,time,value"),
            "{e}"
        );
        let missing = file("origin,time,value\n2022-07-18 00:00,2022-07-18 01:00,\n");
        assert!(read_forecasts(missing.path(), chrono_tz::UTC).is_err());
    }
}
