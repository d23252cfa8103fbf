//! `kind = "serial"`: ASCII lines from a serial port (RS-485 through a USB adapter), 8N1 at the
//! configured baud rate, fields split by the configured delimiter in the configured order. A
//! port that cannot be opened or goes away is retried every few seconds; a garbled line (not
//! text, wrong number of fields, not a number) is logged and counted.

use std::time::Duration;

use hydrowatch_config::SerialSource;
use hydrowatch_core::{LocalTimeParser, prefix};
use tokio::io::BufReader;
use tokio_serial::SerialPortBuilderExt;

use super::lines::{LineFormat, LineRead, parse_line, read_line, skip_line, too_long};
use super::{Intake, Running, Source, this_minute};

/// Seconds between attempts to open a port that failed.
const REOPEN: Duration = Duration::from_secs(5);

/// A serial port source.
pub(super) struct Serial {
    config: SerialSource,
}

impl Serial {
    /// The source of `config`.
    pub(super) fn new(config: SerialSource) -> Serial {
        Serial { config }
    }
}

impl Source for Serial {
    fn name(&self) -> String {
        format!("serial {}", self.config.port.display())
    }

    fn run(self: Box<Self>, intake: Intake) -> Running {
        Box::pin(async move {
            let origin = self.name();
            let format = LineFormat::wide(&self.config.delimiter, &self.config.fields);
            let mut times = LocalTimeParser::new(intake.tz);
            let mut number = 0u64;
            while !intake.stopping() {
                let port = tokio_serial::new(self.config.port.to_string_lossy(), self.config.baud)
                    .data_bits(tokio_serial::DataBits::Eight)
                    .parity(tokio_serial::Parity::None)
                    .stop_bits(tokio_serial::StopBits::One)
                    .open_native_async();
                let port = match port {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(source = %origin, "cannot open the port: {e}; trying again in {}s", REOPEN.as_secs());
                        intake.sleep(REOPEN).await;
                        continue;
                    }
                };
                tracing::info!(source = %origin, baud = self.config.baud, "serial port open");
                let mut reader = BufReader::new(port);
                let mut raw = Vec::new();
                loop {
                    let mut stop = intake.stop.clone();
                    let read = tokio::select! {
                        r = read_line(&mut reader, &mut raw) => r,
                        _ = stop.wait_for(|s| *s) => return Ok(()),
                    };
                    number += 1;
                    match read {
                        Ok(LineRead::End) => {
                            tracing::warn!(source = %origin, "the port closed; reopening");
                            break;
                        }
                        Ok(LineRead::Line) => {}
                        Ok(LineRead::TooLong) => {
                            intake.bad_input(&origin, &too_long(number, &raw));
                            if let Err(e) = skip_line(&mut reader).await {
                                tracing::warn!(source = %origin, "read failed: {e}; reopening");
                                break;
                            }
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(source = %origin, "read failed: {e}; reopening");
                            break;
                        }
                    }
                    let Ok(line) = std::str::from_utf8(&raw) else {
                        intake.bad_input(
                            &origin,
                            &format!("line {number}: not ASCII text (garbled: check baud rate and wiring): {:?}", prefix(&String::from_utf8_lossy(&raw))),
                        );
                        continue;
                    };
                    if line.trim().is_empty() {
                        continue;
                    }
                    match parse_line(&format, line, &mut times, this_minute(), &|s| {
                        intake.newest.get(s)
                    }) {
                        Ok(readings) => {
                            if !intake.send(&origin, readings).await {
                                return Ok(());
                            }
                        }
                        Err(e) => intake.bad_input(&origin, &format!("line {number}: {e}")),
                    }
                }
                intake.sleep(REOPEN).await;
            }
            Ok(())
        })
    }
}
