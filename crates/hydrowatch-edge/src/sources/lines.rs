//! Line protocols: `time,series,value` on standard input or over TCP, and the configurable ASCII
//! lines of a serial port (see `serial`). Over TCP every line is answered, in order, once its
//! readings are committed: `ok`, `ok duplicate`, or `error: <why>`; a client that read `ok`
//! knows the reading is on disk. A tcp source serves at most [`MAX_CONNECTIONS`] at once (a new
//! one closes the connection idle longest) and closes a connection silent for 15 minutes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hydrowatch_core::{LocalTimeParser, Timestamp, prefix};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use super::{Fate, Incoming, Intake, Running, Source, SourceError, this_minute};

/// The longest line a line source reads: far longer than any line of readings, far shorter than
/// what a broken or hostile sender can stream without a line break.
pub(super) const MAX_LINE_BYTES: usize = 4096;

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LineRead {
    /// The input ended (nothing read).
    End,
    /// A line (with its line break, unless the input ended without one).
    Line,
    /// A line longer than [`MAX_LINE_BYTES`]: what was read is in the buffer; the rest is not
    /// read ([`skip_line`] discards it).
    TooLong,
}

/// Reads one line into `buf` (cleared first), never more than [`MAX_LINE_BYTES`] of it.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<LineRead> {
    buf.clear();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if buf.is_empty() {
                LineRead::End
            } else {
                LineRead::Line
            });
        }
        let (used, complete) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if buf.len() + used > MAX_LINE_BYTES {
            let room = MAX_LINE_BYTES - buf.len();
            buf.extend_from_slice(&available[..room]);
            reader.consume(room);
            return Ok(LineRead::TooLong);
        }
        buf.extend_from_slice(&available[..used]);
        reader.consume(used);
        if complete {
            return Ok(LineRead::Line);
        }
    }
}

/// Discards input up to and including the next line break (the rest of a line too long).
pub(crate) async fn skip_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<()> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(());
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = available.len();
                reader.consume(n);
            }
        }
    }
}

/// The error of a line over [`MAX_LINE_BYTES`].
pub(crate) fn too_long(number: u64, start: &[u8]) -> String {
    format!(
        "line {number}: longer than {MAX_LINE_BYTES} bytes (starts {:?})",
        prefix(&String::from_utf8_lossy(start))
    )
}

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
/// of a series is a missing reading; a line without a time field is stamped `arrival`. A local
/// time of the repeated autumn hour is placed after `newest` of the line's series (the newest
/// reading stored) when that resolves it.
pub fn parse_line(
    format: &LineFormat,
    line: &str,
    times: &mut LocalTimeParser,
    arrival: Timestamp,
    newest: &dyn Fn(&str) -> Option<Timestamp>,
) -> Result<Vec<Incoming>, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    let parts: Vec<&str> = line.split(format.delimiter.as_str()).collect();
    if parts.len() != format.fields.len() {
        return Err(format!(
            "{} fields where {} were expected ({}): {:?}",
            parts.len(),
            format.fields.len(),
            format.describe(),
            prefix(line)
        ));
    }
    let what = |n: usize, f: &str| format!("field {} ({f})", n + 1);
    let mut name = None;
    let mut values = Vec::new();
    let mut time = None;
    for (n, (field, text)) in format.fields.iter().zip(&parts).enumerate() {
        let text = text.trim();
        match field {
            Field::Time => time = Some((n, text)),
            Field::SeriesName => {
                if text.is_empty() {
                    return Err(format!("{}: empty", what(n, "series")));
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
                    .ok_or_else(|| {
                        format!(
                            "{}: {:?} is not a finite number",
                            what(n, label),
                            prefix(text)
                        )
                    })?;
                values.push((
                    match field {
                        Field::Series(s) => s.clone(),
                        _ => name.clone().unwrap_or_default(),
                    },
                    value,
                ));
            }
        }
    }
    // The series' names are known once every field is read (a narrow line names its series
    // after the time).
    if let Some(name) = &name {
        for v in &mut values {
            v.0.clone_from(name);
        }
    }
    let ts = match time {
        None => arrival,
        Some((n, text)) => {
            let after = values.iter().filter_map(|(s, _)| newest(s)).max();
            times
                .parse_after(text, after)
                .map_err(|e| format!("{}: {:?}: {e}", what(n, "time"), prefix(text)))?
        }
    };
    Ok(values
        .into_iter()
        .map(|(series, value)| Incoming { series, ts, value })
        .collect())
}

/// `kind = "stdin"`: lines `time,series,value` on standard input, until it ends.
pub(super) struct Stdin;

impl Source for Stdin {
    fn name(&self) -> String {
        "stdin".into()
    }

    fn run(self: Box<Self>, intake: Intake) -> Running {
        Box::pin(async move {
            let mut reader = BufReader::new(tokio::io::stdin());
            let mut raw = Vec::new();
            let format = LineFormat::narrow();
            let mut times = LocalTimeParser::new(intake.tz);
            let mut number = 0u64;
            loop {
                let mut stop = intake.stop.clone();
                let read = tokio::select! {
                    r = read_line(&mut reader, &mut raw) => r,
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                };
                number += 1;
                match read {
                    Ok(LineRead::Line) => {}
                    Ok(LineRead::End) => {
                        tracing::info!("stdin ended");
                        return Ok(());
                    }
                    Ok(LineRead::TooLong) => {
                        intake.bad_input("stdin", &too_long(number, &raw));
                        if let Err(e) = skip_line(&mut reader).await {
                            intake.bad_input("stdin", &format!("line {number}: {e}"));
                        }
                        continue;
                    }
                    Err(e) => {
                        intake.bad_input("stdin", &format!("line {number}: {e}"));
                        continue;
                    }
                }
                let line = String::from_utf8_lossy(&raw);
                if line.trim().is_empty() {
                    continue;
                }
                match parse_line(&format, &line, &mut times, this_minute(), &|s| {
                    intake.newest.get(s)
                }) {
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
pub(super) struct Tcp {
    listen: String,
}

impl Tcp {
    /// A listener on `listen` (`host:port`).
    pub(super) fn new(listen: String) -> Tcp {
        Tcp { listen }
    }
}

/// Most lines committed together (and answered together).
const LINES_PER_BATCH: usize = 1000;
/// Connections a tcp source serves at once; one more closes the connection idle longest (a
/// flood of idle connections cannot use up the daemon's file handles, nor lock a sender out).
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// A connection that sends no line for this long is closed (a sender that keeps its connection
/// between readings sends one at least every few minutes).
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The open connections of a tcp source: when each last sent a line, and how to close it.
#[derive(Debug, Default)]
struct Connections {
    next: u64,
    open: HashMap<u64, (Instant, watch::Sender<bool>)>,
}

impl Connections {
    /// Registers a new connection, first closing the one idle longest when `max` are open;
    /// returns its id and what tells it to close.
    fn open(&mut self, max: usize) -> (u64, watch::Receiver<bool>) {
        if self.open.len() >= max
            && let Some(idle) = self
                .open
                .iter()
                .min_by_key(|(_, (last, _))| *last)
                .map(|(id, _)| *id)
            && let Some((_, close)) = self.open.remove(&idle)
        {
            let _ = close.send(true);
        }
        let (tx, rx) = watch::channel(false);
        self.next += 1;
        self.open.insert(self.next, (Instant::now(), tx));
        (self.next, rx)
    }

    /// Connection `id` sent lines.
    fn touch(&mut self, id: u64) {
        if let Some((last, _)) = self.open.get_mut(&id) {
            *last = Instant::now();
        }
    }

    /// Connection `id` ended.
    fn close(&mut self, id: u64) {
        self.open.remove(&id);
    }
}

impl Source for Tcp {
    fn name(&self) -> String {
        format!("tcp {}", self.listen)
    }

    fn run(self: Box<Self>, intake: Intake) -> Running {
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind(self.listen.as_str())
                .await
                .map_err(|e| SourceError::Open {
                    origin: format!("tcp {}", self.listen),
                    message: format!("cannot listen: {e}"),
                })?;
            tracing::info!(listen = %self.listen, "tcp source listening");
            let mut stop = intake.stop.clone();
            let connections = Arc::new(Mutex::new(Connections::default()));
            let mut errors = hydrowatch_listen::AcceptErrors::default();
            let name = self.name();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                };
                match accepted {
                    Ok((socket, peer)) => {
                        errors.succeeded();
                        let intake = intake.clone();
                        let connections = connections.clone();
                        let (id, closed) = lock(&connections).open(MAX_CONNECTIONS);
                        tokio::spawn(async move {
                            let touch = || lock(&connections).touch(id);
                            connection(socket, peer, intake, closed, &touch).await;
                            lock(&connections).close(id);
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors, mostly: wait for some to close.
                        let wait = errors.failed(&name, &e);
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = stop.wait_for(|s| *s) => return Ok(()),
                        }
                    }
                }
            }
        })
    }
}

fn lock(connections: &Mutex<Connections>) -> std::sync::MutexGuard<'_, Connections> {
    connections.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves one connection until it ends, breaks, stays silent for [`IDLE_TIMEOUT`], or `closed`
/// turns true (a newer connection needed its slot); `touch` says it sent lines.
async fn connection(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    intake: Intake,
    mut closed: watch::Receiver<bool>,
    touch: &(dyn Fn() + Sync),
) {
    let origin = format!("tcp {peer}");
    let (read, mut write) = socket.into_split();
    let mut reader = BufReader::new(read);
    let mut raw = Vec::new();
    let format = LineFormat::narrow();
    let mut times = LocalTimeParser::new(intake.tz);
    let mut number = 0u64;
    let mut stop = intake.stop.clone();
    loop {
        // One line (waiting for it), then every complete line already received.
        let mut lines = Vec::new();
        let mut too_long_line = None;
        loop {
            let read = if lines.is_empty() {
                tokio::select! {
                    r = tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut reader, &mut raw)) => match r {
                        Ok(r) => r,
                        Err(_) => {
                            tracing::debug!(%peer, "tcp source: connection idle too long, closed");
                            return;
                        }
                    },
                    _ = stop.wait_for(|s| *s) => return,
                    _ = closed.wait_for(|c| *c) => {
                        tracing::debug!(%peer, "tcp source: idle connection closed for a new one");
                        return;
                    }
                }
            } else {
                read_line(&mut reader, &mut raw).await
            };
            match read {
                Ok(LineRead::End) => {
                    if lines.is_empty() {
                        return;
                    }
                    break;
                }
                Ok(LineRead::Line) => lines.push(String::from_utf8_lossy(&raw).into_owned()),
                // Answered after the lines before it, then the connection is dropped: the
                // sender is broken or hostile, and reading on would only wait for its newline.
                Ok(LineRead::TooLong) => {
                    too_long_line = Some(too_long(number + lines.len() as u64 + 1, &raw));
                    break;
                }
                Err(e) => {
                    intake.bad_input(&origin, &format!("line {}: {e}", number + 1));
                    return;
                }
            }
            if lines.len() >= LINES_PER_BATCH || !reader.buffer().contains(&b'\n') {
                break;
            }
        }
        touch();
        let mut answers: Vec<Result<(usize, usize), String>> = Vec::with_capacity(lines.len());
        let mut readings = Vec::new();
        for line in &lines {
            number += 1;
            match parse_line(&format, line, &mut times, this_minute(), &|s| {
                intake.newest.get(s)
            }) {
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
        if let Some(e) = &too_long_line {
            intake.bad_input(&origin, &format!("{e}: connection closed"));
            text.push_str(&format!("error: {e}: connection closed\n"));
        }
        if write.write_all(text.as_bytes()).await.is_err() || too_long_line.is_some() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_source_closes_the_connection_idle_longest_for_a_new_one() {
        let mut c = Connections::default();
        let (first, first_closed) = c.open(2);
        let (_, second_closed) = c.open(2);
        // The first sends a line: the second is now idle longest.
        std::thread::sleep(std::time::Duration::from_millis(5));
        c.touch(first);
        let (_, third_closed) = c.open(2);
        assert!(*second_closed.borrow() && !*first_closed.borrow() && !*third_closed.borrow());
        assert_eq!(c.open.len(), 2);
        c.close(first);
        assert_eq!(c.open.len(), 1);
    }

    #[tokio::test]
    async fn lines_are_read_up_to_their_bound_and_the_rest_skipped() {
        let long = "9".repeat(3 * MAX_LINE_BYTES);
        let input = format!("a,b,c\n{long}\nd,e,f");
        let mut reader = BufReader::with_capacity(1000, input.as_bytes());
        let mut raw = Vec::new();
        assert_eq!(
            read_line(&mut reader, &mut raw).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(raw, b"a,b,c\n");
        assert_eq!(
            read_line(&mut reader, &mut raw).await.unwrap(),
            LineRead::TooLong
        );
        assert_eq!(raw.len(), MAX_LINE_BYTES);
        let e = too_long(2, &raw);
        assert!(e.len() < 120 && e.contains("longer than 4096 bytes"), "{e}");
        skip_line(&mut reader).await.unwrap();
        assert_eq!(
            read_line(&mut reader, &mut raw).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(raw, b"d,e,f");
        assert_eq!(
            read_line(&mut reader, &mut raw).await.unwrap(),
            LineRead::End
        );
    }

    #[test]
    fn lines_parse_or_name_the_field_and_text() {
        let tz = chrono_tz::Asia::Seoul;
        let mut times = LocalTimeParser::new(tz);
        let r = parse_line(
            &LineFormat::narrow(),
            "2024-07-01 12:00,flow_rate,118.5\r\n",
            &mut times,
            0,
            &|_| None,
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
            let e = parse_line(&LineFormat::narrow(), line, &mut times, 0, &|_| None).unwrap_err();
            assert!(e.contains(needle), "{line}: {e}");
        }
        // A serial line without time: stamped with the arrival minute; empty field = missing.
        let wide = LineFormat::wide(";", &["flow_rate".into(), "_".into(), "pressure".into()]);
        let r = parse_line(&wide, "101.5;xx;", &mut times, 600, &|_| None).unwrap();
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
