//! Line protocols: `time,series,value` on standard input or over TCP, and the configurable ASCII
//! lines of a serial port (see `serial`). Over TCP every line is answered, in order, once its
//! readings are committed: `ok`, `ok duplicate`, or `error: <why>`; a client that read `ok`
//! knows the reading is on disk.

use std::net::SocketAddr;

use hydrowatch_core::{LocalTimeParser, Timestamp};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{Fate, Incoming, Intake, Running, Source, SourceError, this_minute};

/// What one field of a line holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The time of the readings.
    Time,
    /// The name of the series of the line's `Value`.
    SeriesName,
    /// The value of the series named by `SeriesName`.
    Value,
    /// The value of this series.
    Series(String),
    /// Ignored.
    Skip,
}

/// How a line is split and what its fields are.
#[derive(Debug, Clone)]
pub struct LineFormat {
    /// Between fields.
    pub delimiter: String,
    /// The fields, in order.
    pub fields: Vec<Field>,
}

impl LineFormat {
    /// `time,series,value`.
    pub fn narrow() -> LineFormat {
        LineFormat {
            delimiter: ",".into(),
            fields: vec![Field::Time, Field::SeriesName, Field::Value],
        }
    }

    /// From a serial source's `fields`: `time`, `_`, or series names.
    pub fn wide(delimiter: &str, fields: &[String]) -> LineFormat {
        LineFormat {
            delimiter: delimiter.into(),
            fields: fields
                .iter()
                .map(|f| match f.as_str() {
                    "time" => Field::Time,
                    "_" => Field::Skip,
                    name => Field::Series(name.into()),
                })
                .collect(),
        }
    }

    fn describe(&self) -> String {
        self.fields
            .iter()
            .map(|f| match f {
                Field::Time => "time".to_string(),
                Field::SeriesName => "series".into(),
                Field::Value => "value".into(),
                Field::Series(s) => s.clone(),
                Field::Skip => "_".into(),
            })
            .collect::<Vec<_>>()
            .join(&self.delimiter)
    }
}

/// Parses one line into its readings; the error names the field and its text. An empty field
/// of a series is a missing reading; a line without a time field is stamped `arrival`.
pub fn parse_line(
    format: &LineFormat,
    line: &str,
    times: &mut LocalTimeParser,
    arrival: Timestamp,
) -> Result<Vec<Incoming>, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    let parts: Vec<&str> = line.split(format.delimiter.as_str()).collect();
    if parts.len() != format.fields.len() {
        return Err(format!(
            "{} fields where {} were expected ({}): {line:?}",
            parts.len(),
            format.fields.len(),
            format.describe()
        ));
    }
    let mut ts = arrival;
    let mut name = None;
    let mut values = Vec::new();
    for (n, (field, text)) in format.fields.iter().zip(&parts).enumerate() {
        let text = text.trim();
        let what = |f: &str| format!("field {} ({f})", n + 1);
        match field {
            Field::Time => {
                ts = times
                    .parse(text)
                    .map_err(|e| format!("{}: {text:?}: {e}", what("time")))?;
            }
            Field::SeriesName => {
                if text.is_empty() {
                    return Err(format!("{}: empty", what("series")));
                }
                name = Some(text.to_string());
            }
            Field::Skip => {}
            Field::Value | Field::Series(_) => {
                let label = match field {
                    Field::Series(s) => s.as_str(),
                    _ => "value",
                };
                if text.is_empty() && matches!(field, Field::Series(_)) {
                    continue;
                }
                let value: f64 = text
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite())
                    .ok_or_else(|| format!("{}: {text:?} is not a finite number", what(label)))?;
                values.push((field.clone(), value));
            }
        }
    }
    Ok(values
        .into_iter()
        .map(|(field, value)| Incoming {
            series: match field {
                Field::Series(s) => s,
                _ => name.clone().unwrap_or_default(),
            },
            ts,
            value,
        })
        .collect())
}

/// `kind = "stdin"`: lines `time,series,value` on standard input, until it ends.
pub struct Stdin;

impl Source for Stdin {
    fn name(&self) -> String {
        "stdin".into()
    }

    fn run(self: Box<Self>, intake: Intake) -> Running {
        Box::pin(async move {
            let mut lines = BufReader::new(tokio::io::stdin()).lines();
            let format = LineFormat::narrow();
            let mut times = LocalTimeParser::new(intake.tz);
            let mut number = 0u64;
            loop {
                let mut stop = intake.stop.clone();
                let line = tokio::select! {
                    l = lines.next_line() => l,
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                };
                let line = match line {
                    Ok(Some(l)) => l,
                    Ok(None) => {
                        tracing::info!("stdin ended");
                        return Ok(());
                    }
                    Err(e) => {
                        intake.bad_input("stdin", &format!("line {}: {e}", number + 1));
                        continue;
                    }
                };
                number += 1;
                if line.trim().is_empty() {
                    continue;
                }
                match parse_line(&format, &line, &mut times, this_minute()) {
                    Ok(readings) => {
                        if !intake.send("stdin", readings).await {
                            return Ok(());
                        }
                    }
                    Err(e) => intake.bad_input("stdin", &format!("line {number}: {e}")),
                }
            }
        })
    }
}

/// `kind = "tcp"`: a listener; each connection sends lines `time,series,value` and reads one
/// answer per line.
pub struct Tcp {
    listen: SocketAddr,
}

impl Tcp {
    /// A listener on `listen`.
    pub fn new(listen: SocketAddr) -> Tcp {
        Tcp { listen }
    }
}

/// Most lines committed together (and answered together).
const LINES_PER_BATCH: usize = 1000;

impl Source for Tcp {
    fn name(&self) -> String {
        format!("tcp {}", self.listen)
    }

    fn run(self: Box<Self>, intake: Intake) -> Running {
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind(self.listen)
                .await
                .map_err(|e| SourceError::Open {
                    origin: format!("tcp {}", self.listen),
                    message: format!("cannot listen: {e}"),
                })?;
            tracing::info!(listen = %self.listen, "tcp source listening");
            let mut stop = intake.stop.clone();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                };
                match accepted {
                    Ok((socket, peer)) => {
                        let intake = intake.clone();
                        tokio::spawn(async move { connection(socket, peer, intake).await });
                    }
                    Err(e) => tracing::warn!("tcp source: accept failed: {e}"),
                }
            }
        })
    }
}

async fn connection(socket: tokio::net::TcpStream, peer: SocketAddr, intake: Intake) {
    let origin = format!("tcp {peer}");
    let (read, mut write) = socket.into_split();
    let mut reader = BufReader::new(read);
    let format = LineFormat::narrow();
    let mut times = LocalTimeParser::new(intake.tz);
    let mut number = 0u64;
    let mut stop = intake.stop.clone();
    loop {
        // One line (waiting for it), then every complete line already received.
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = if lines.is_empty() {
                tokio::select! {
                    r = reader.read_line(&mut line) => r,
                    _ = stop.wait_for(|s| *s) => return,
                }
            } else {
                reader.read_line(&mut line).await
            };
            match read {
                Ok(0) => {
                    if lines.is_empty() {
                        return;
                    }
                    break;
                }
                Ok(_) => lines.push(line),
                Err(e) => {
                    intake.bad_input(&origin, &format!("line {}: {e}", number + 1));
                    return;
                }
            }
            if lines.len() >= LINES_PER_BATCH || !reader.buffer().contains(&b'\n') {
                break;
            }
        }
        let mut answers: Vec<Result<(usize, usize), String>> = Vec::with_capacity(lines.len());
        let mut readings = Vec::new();
        for line in &lines {
            number += 1;
            match parse_line(&format, line, &mut times, this_minute()) {
                Ok(r) => {
                    answers.push(Ok((readings.len(), r.len())));
                    readings.extend(r);
                }
                Err(e) => {
                    let e = format!("line {number}: {e}");
                    intake.bad_input(&origin, &e);
                    answers.push(Err(e));
                }
            }
        }
        let fates = if readings.is_empty() {
            Vec::new()
        } else {
            match intake.commit(&origin, readings).await {
                Some(f) => f,
                None => return,
            }
        };
        let mut text = String::new();
        for answer in answers {
            match answer {
                Err(e) => text.push_str(&format!("error: {e}\n")),
                Ok((at, n)) => {
                    let fates = &fates[at..at + n];
                    if let Some(Fate::Refused(why)) =
                        fates.iter().find(|f| matches!(f, Fate::Refused(_)))
                    {
                        text.push_str(&format!("error: {why}\n"));
                    } else if !fates.is_empty() && fates.iter().all(|f| *f == Fate::Duplicate) {
                        text.push_str("ok duplicate\n");
                    } else {
                        text.push_str("ok\n");
                    }
                }
            }
        }
        if write.write_all(text.as_bytes()).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_or_name_the_field_and_text() {
        let tz = chrono_tz::Asia::Seoul;
        let mut times = LocalTimeParser::new(tz);
        let r = parse_line(
            &LineFormat::narrow(),
            "2024-07-01 12:00,flow_rate,118.5\r\n",
            &mut times,
            0,
        )
        .unwrap();
        assert_eq!(r[0].series, "flow_rate");
        assert_eq!(r[0].value, 118.5);
        assert_eq!(
            hydrowatch_core::time::format_local(r[0].ts, tz),
            "2024-07-01 12:00"
        );
        for (line, needle) in [
            (
                "2024-07-01 12:00,flow_rate",
                "2 fields where 3 were expected (time,series,value)",
            ),
            (
                "2024-13-01 12:00,flow_rate,1",
                "field 1 (time): \"2024-13-01 12:00\"",
            ),
            (
                "2024-07-01 12:00,flow_rate,abc",
                "field 3 (value): \"abc\" is not a finite number",
            ),
            ("2024-07-01 12:00,flow_rate,NaN", "field 3 (value): \"NaN\""),
            ("2024-07-01 12:00,,1", "field 2 (series): empty"),
        ] {
            let e = parse_line(&LineFormat::narrow(), line, &mut times, 0).unwrap_err();
            assert!(e.contains(needle), "{line}: {e}");
        }
        // A serial line without time: stamped with the arrival minute; empty field = missing.
        let wide = LineFormat::wide(";", &["flow_rate".into(), "_".into(), "pressure".into()]);
        let r = parse_line(&wide, "101.5;xx;", &mut times, 600).unwrap();
        assert_eq!(
            r,
            vec![Incoming {
                series: "flow_rate".into(),
                ts: 600,
                value: 101.5
            }]
        );
    }
}
