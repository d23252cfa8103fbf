//! `kind = "csv_replay"`: a readings file (any file `hydrowatch import` reads) replayed in its
//! order at `speed` times real pace (0: as fast as the daemon takes it). A bad row is logged with
//! file, line, field and value, counted, and skipped; the rest is replayed.

use hydrowatch_config::ReplaySource;
use hydrowatch_csv::{ReadOptions, ReadingsCsv};

use super::{Incoming, Intake, Pacer, Running, Source, SourceError};

/// Rows sent together when not paced.
const UNPACED_BATCH: usize = 1440;

/// The replay source.
pub(super) struct Replay {
    config: ReplaySource,
}

impl Replay {
    /// The source of `config`.
    pub(super) fn new(config: ReplaySource) -> Replay {
        Replay { config }
    }
}

impl Source for Replay {
    fn name(&self) -> String {
        format!("csv_replay {}", self.config.path.display())
    }

    fn run(self: Box<Self>, intake: Intake) -> Running {
        Box::pin(async move {
            let origin = self.name();
            let tz = match &self.config.timezone {
                Some(name) => hydrowatch_config::parse_timezone(name).map_err(|message| {
                    SourceError::Open {
                        origin: origin.clone(),
                        message,
                    }
                })?,
                None => intake.tz,
            };
            let options = ReadOptions {
                timezone: tz,
                series: self.config.series.clone(),
                clock: None,
            };
            let mut csv =
                ReadingsCsv::open(&self.config.path, &options).map_err(|e| SourceError::Open {
                    origin: origin.clone(),
                    message: e.to_string(),
                })?;
            let names: Vec<String> = csv.series().map(str::to_string).collect();
            if let Some(unknown) = names.iter().find(|n| !intake.series.contains(n)) {
                return Err(SourceError::Open {
                    origin,
                    message: format!(
                        "column {unknown:?} is not a configured series (configured: {})",
                        intake.series.join(", ")
                    ),
                });
            }
            let mut pacer = Pacer::new(self.config.speed);
            let mut batch = Vec::new();
            let mut rows = 0usize;
            loop {
                let row = match csv.next_row() {
                    None => break,
                    Some(Err(e)) => {
                        if e.is_row_error() {
                            intake.bad_input(&origin, &e.to_string());
                            continue;
                        }
                        intake.bad_input(&origin, &e.to_string());
                        break;
                    }
                    Some(Ok(row)) => row,
                };
                let ts = row.ts;
                let readings: Vec<Incoming> = names
                    .iter()
                    .zip(row.values)
                    .filter_map(|(n, v)| {
                        v.map(|value| Incoming {
                            series: n.clone(),
                            ts,
                            value,
                        })
                    })
                    .collect();
                let wait = pacer.delay(ts);
                if !wait.is_zero() && !intake.sleep(wait).await {
                    return Ok(());
                }
                batch.extend(readings);
                rows += 1;
                // Paced: each row as it falls due; unpaced: a day of minutes at a time.
                if (self.config.speed != 0.0 || batch.len() >= UNPACED_BATCH)
                    && !intake.send(&origin, std::mem::take(&mut batch)).await
                {
                    return Ok(());
                }
            }
            intake.send(&origin, batch).await;
            tracing::info!(source = %origin, rows, "replay finished");
            Ok(())
        })
    }
}
