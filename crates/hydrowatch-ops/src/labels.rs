//! Labelled events (`start,end,kind,series`, as `hydrowatch simulate --labels` writes them), the
//! answer key `hydrowatch detect --labels` scores a run against.
//!
//! Invariants: a label file is read whole or refused; each error names the file, the line, the
//! field and a short prefix of the value; every label ends after it starts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use hydrowatch_core::{LocalTimeParser, prefix};
use hydrowatch_detect::score::Label;

/// The header a label file starts with.
pub const HEADER: &str = "start,end,kind,series";

/// Why a label file was refused.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// The file could not be opened or read.
    #[error("{}: cannot read: {source}", .file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A line is not a label.
    #[error("{}:{line}: {problem}", .file.display())]
    Line {
        /// The file.
        file: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong, naming the field and the value.
        problem: String,
    },
}

/// Reads the labels of `path`, local times in `tz`.
pub fn read_labels(path: &Path, tz: Tz) -> Result<Vec<Label>, LabelError> {
    let read = |source| LabelError::Read {
        file: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut parser = LocalTimeParser::new(tz);
    let mut labels = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(read)?;
        let n = i + 1;
        let fail = |problem: String| LabelError::Line {
            file: path.to_path_buf(),
            line: n,
            problem,
        };
        if n == 1 {
            if line.trim() != HEADER {
                return Err(fail(format!(
                    "header {:?}: expected {HEADER}",
                    prefix(line.trim())
                )));
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 4 {
            return Err(fail(format!(
                "{} fields, expected 4 ({HEADER}): {:?}",
                fields.len(),
                prefix(&line)
            )));
        }
        let mut time = |field: &str, text: &str| {
            parser
                .parse(text)
                .map_err(|e| fail(format!("field {field}, value {:?}: {e}", prefix(text))))
        };
        let (start, end) = (time("start", fields[0])?, time("end", fields[1])?);
        if start >= end {
            return Err(fail(format!(
                "end {:?} is not after start {:?}",
                prefix(fields[1]),
                prefix(fields[0])
            )));
        }
        labels.push(Label {
            start,
            end,
            kind: fields[2].to_string(),
            series: fields[3].to_string(),
        });
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(text: &str) -> Result<Vec<Label>, LabelError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.csv");
        std::fs::write(&path, text).unwrap();
        read_labels(&path, chrono_tz::UTC)
    }

    #[test]
    fn labels_are_read_and_every_bad_line_is_named() {
        let l =
            labels("start,end,kind,series\n2024-07-01 00:00,2024-07-01 02:00,burst,flow_rate\n\n")
                .unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].end - l[0].start, l[0].kind.as_str()), (7200, "burst"));
        for (text, expected) in [
            ("time,value\n", ":1: header \"time,value\""),
            ("start,end,kind,series\na,b\n", ":2: 2 fields, expected 4"),
            (
                "start,end,kind,series\n2024-13-01 00:00,2024-07-01 02:00,burst,flow_rate\n",
                ":2: field start, value \"2024-13-01 00:00\"",
            ),
            (
                "start,end,kind,series\n2024-07-01 02:00,2024-07-01 02:00,burst,flow_rate\n",
                ":2: end \"2024-07-01 02:00\" is not after start",
            ),
        ] {
            let e = labels(text).unwrap_err().to_string();
            assert!(e.contains(expected), "{e}");
        }
    }
}
