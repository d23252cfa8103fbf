//! `kind = "simulator"`: the built-in simulator (`hydrowatch-sim`) as a live sensor pair. At
//! speed 1 it starts at the current minute and sends each minute when the wall clock reaches it;
//! faster (or 0: as fast as taken) it replays from its start date with its labelled events.

use chrono_tz::Tz;
use hydrowatch_config::SimulatorSource;
use hydrowatch_sim::{EventPlan, SimConfig};

use super::{Incoming, Intake, Pacer, Running, Source, this_minute};

/// Days simulated when `days` is not given.
const OPEN_ENDED_DAYS: u32 = 3650;
/// Minutes sent together when not paced.
const UNPACED_BATCH: usize = 1440;

/// The simulator source.
pub(super) struct Simulator {
    config: SimulatorSource,
    tz: Tz,
}

impl Simulator {
    /// The source of `config` in zone `tz`.
    pub(super) fn new(config: SimulatorSource, tz: Tz) -> Simulator {
        Simulator { config, tz }
    }
}

impl Source for Simulator {
    fn name(&self) -> String {
        format!("simulator seed {}", self.config.seed)
    }

    fn run(self: Box<Self>, intake: Intake) -> Running {
        Box::pin(async move {
            let origin = self.name();
            let live = self.config.speed == 1.0;
            let today = hydrowatch_core::time::local_date(this_minute(), self.tz);
            let sim = SimConfig {
                start: self.config.start.unwrap_or(today),
                days: self.config.days.unwrap_or(OPEN_ENDED_DAYS),
                seed: self.config.seed,
                timezone: self.tz,
                mean_flow: self
                    .config
                    .mean_flow
                    .unwrap_or(SimConfig::default().mean_flow),
                events: EventPlan::Random,
                ..SimConfig::default()
            };
            let now = this_minute();
            let mut samples =
                hydrowatch_sim::Simulator::new(sim).skip_while(move |s| live && s.ts < now);
            let mut pacer = Pacer::new(if live { 1.0 } else { self.config.speed });
            let mut batch = Vec::new();
            loop {
                let Some(s) = samples.next() else {
                    intake.send(&origin, batch).await;
                    tracing::info!(source = %origin, "simulation ended");
                    return Ok(());
                };
                let wait = if live {
                    std::time::Duration::from_secs(
                        (s.ts - chrono::Utc::now().timestamp()).max(0) as u64
                    )
                } else {
                    pacer.delay(s.ts)
                };
                if !wait.is_zero() && !intake.sleep(wait).await {
                    return Ok(());
                }
                for (series, value) in [("flow_rate", s.flow_rate), ("pressure", s.pressure)] {
                    if let Some(value) = value {
                        batch.push(Incoming {
                            series: series.into(),
                            ts: s.ts,
                            value,
                        });
                    }
                }
                // Paced: each minute as it falls due; unpaced: a day at a time.
                if (self.config.speed != 0.0 || batch.len() >= UNPACED_BATCH)
                    && !intake.send(&origin, std::mem::take(&mut batch)).await
                {
                    return Ok(());
                }
            }
        })
    }
}
