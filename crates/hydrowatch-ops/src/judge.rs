//! Detection on the device database: the detector resumes from its saved state, judges the
//! stored readings it has not judged yet in time order, and writes the alarm transitions, their
//! outbox messages, the criteria fitted, the nights summed up and its new state in ONE
//! transaction (design.md, Delivery). `hydrowatch detect` (a backfill) and the daemon's detection
//! thread (after every commit of readings) both use it, so a crash between the two transactions
//! of ingest and detection only means the readings are judged after the restart, once.

use hydrowatch_core::time::DAY;
use std::collections::BTreeMap;

use chrono_tz::Tz;
use hydrowatch_config::{Config, TimeOfDay};
use hydrowatch_core::Timestamp;
use hydrowatch_core::time::format_local;
use hydrowatch_detect::{
    Alert, DetectError, Detector, HourForecast, LifecycleSettings, NightSettings, Refit, Runner,
    SeriesSettings,
};
use hydrowatch_store::{
    AlarmChange, DetectionWrite, NightRecord, OutboxLimits, OutboxMessage, SeriesId, SeriesInfo,
    Store, StoreError,
};

/// Why detection on the database failed.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The detector refused its settings or state.
    #[error(transparent)]
    Detect(#[from] DetectError),
}

/// Detection settings of series `name` (and `unit`, if known) from the configuration; series
/// not configured get the defaults (range and largest change learned from their history).
pub fn series_settings(config: &Config, name: &str, unit: Option<&str>) -> SeriesSettings {
    let d = &config.detection;
    let configured = config.series(name);
    let unit = configured
        .map(|s| s.unit.as_str())
        .or(unit)
        .unwrap_or_default();
    // A rate unit (m3/h, L/s) is a flow; without a unit, the name decides.
    let looks_like_flow = if unit.is_empty() {
        name.contains("flow")
    } else {
        unit.contains('/')
    };
    let flow = configured
        .and_then(|s| s.night_flow)
        .unwrap_or(looks_like_flow);
    let mut s = SeriesSettings::new(name, unit, flow);
    s.trailing_days = d.trailing_days;
    s.lifecycle = LifecycleSettings {
        open_stage: d.open_stage,
        open_after: d.open_after,
        open_percentile: d.open_percentile,
        hysteresis: d.hysteresis,
        clear_after: d.clear_after,
    };
    if let Some(n) = &mut s.night_flow {
        *n = NightSettings {
            start: time_of_day(d.night_start),
            end: time_of_day(d.night_end),
            rise: d.night_rise,
            nights: d.night_baseline,
            min_nights: d.night_baseline.min(5),
        };
    }
    if let Some(c) = configured {
        s.stages = c.stages.unwrap_or(s.stages);
        s.stale_minutes = c.stale_minutes.unwrap_or(s.stale_minutes);
        s.stuck_minutes = c.stuck_minutes.unwrap_or(s.stuck_minutes);
        (s.min, s.max, s.max_rate) = (c.min, c.max, c.max_rate);
    }
    s
}

/// A configured time of day as a `NaiveTime`.
pub fn time_of_day(t: TimeOfDay) -> chrono::NaiveTime {
    chrono::NaiveTime::from_hms_opt(u32::from(t.hour), u32::from(t.minute), 0)
        .expect("TimeOfDay is validated")
}

/// Where alert messages go: the central server's outbox, with its limits.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The device's id in the envelopes.
    pub device_id: String,
    /// The device's number in alert messages.
    pub machine_number: u32,
    /// The outbox's bounds.
    pub limits: OutboxLimits,
}

impl Outbound {
    /// From the configuration: `None` without a `[server]`.
    pub fn from_config(config: &Config) -> Option<Outbound> {
        config.server.as_ref().map(|server| Outbound {
            device_id: config.device.id.clone(),
            machine_number: config.device.machine_number,
            limits: OutboxLimits {
                max_rows: server.outbox_rows,
                max_bytes: server.outbox_megabytes.saturating_mul(1 << 20),
            },
        })
    }
}

/// Judges one row: advances the runner to its time, observes its readings (one per series,
/// `None`: missing) and returns the alarm transitions.
pub type RowStep<'a, E> =
    dyn FnMut(&mut Runner, Timestamp, &[Option<f64>]) -> Result<Vec<Alert>, E> + 'a;

/// What one pass wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Alarm transitions.
    pub transitions: usize,
    /// Messages queued for the server.
    pub queued: usize,
    /// Criteria fits.
    pub criteria: usize,
    /// Nights summed up.
    pub nights: usize,
}

/// The detector of the database's series, with its criteria's trailing history.
#[derive(Debug)]
pub struct DatabaseDetector {
    /// The runner (detector, criteria history, refit schedule).
    pub runner: Runner,
    series: Vec<SeriesInfo>,
    outbound: Option<Outbound>,
    tz: Tz,
    ahead: Option<i64>,
    /// The newest stored reading ahead of the clock already reported.
    reported_ahead: Timestamp,
}

/// The latest reading time judged: `ahead` seconds past the wall clock, or no bound.
fn horizon(ahead: Option<i64>) -> Timestamp {
    ahead.map_or(Timestamp::MAX, |a| {
        chrono::Utc::now().timestamp().saturating_add(a)
    })
}

/// The most rows judged per transaction (a day of minutes of a few series): bounds the memory
/// of a long catch-up.
const CHUNK_SECONDS: i64 = DAY;

impl DatabaseDetector {
    /// The detector of every series of `store`, restored from its saved state (a state saved for
    /// other series is logged and replaced), with the trailing history before `since` loaded
    /// for the criteria. `since` defaults to where the saved state stopped (the newest minute on
    /// a first run, everything on an empty database); the start of the span to judge is
    /// returned.
    ///
    /// `ahead`: on the wall clock, the seconds a reading may lie ahead of it. A stored reading
    /// later than that (a mistyped year, however it was stored) is never judged, so that it
    /// cannot stand ahead of every later reading as "already judged"; a saved state that judged
    /// such readings is replaced. `None` when the readings keep time (a faster replay).
    pub fn open(
        store: &Store,
        config: &Config,
        refit: Refit,
        since: Option<Timestamp>,
        ahead: Option<i64>,
    ) -> Result<(DatabaseDetector, Timestamp), JudgeError> {
        let tz = store.timezone();
        let series = store.series()?;
        let settings: Vec<SeriesSettings> = series
            .iter()
            .map(|s| series_settings(config, &s.name, Some(&s.unit)))
            .collect();
        let horizon = horizon(ahead);
        let detector = match store.detector_state()? {
            Some(state) => match Detector::restore(tz, settings.clone(), &state) {
                Ok(d) if (0..series.len()).any(|i| d.last_judged(i) > Some(horizon)) => {
                    tracing::warn!(
                        "the saved detector state judged readings ahead of the clock ({}): starting afresh",
                        format_local(horizon, tz)
                    );
                    Detector::new(tz, settings)?
                }
                Ok(d) => d,
                Err(DetectError::StateMismatch { stored, configured }) => {
                    tracing::warn!(
                        "the saved detector state is for series {stored:?}, the database has {configured:?}: starting afresh"
                    );
                    Detector::new(tz, settings)?
                }
                Err(e) => return Err(e.into()),
            },
            None => Detector::new(tz, settings)?,
        };
        let since = match since {
            // Readings already judged would only be found late: the span starts after them,
            // and the criteria's history is what lies before that start.
            Some(t) => (0..series.len())
                .map(|i| detector.last_judged(i).map_or(t, |last| t.max(last + 1)))
                .min()
                .unwrap_or(t),
            None => {
                let mut since = Timestamp::MAX;
                for (i, s) in series.iter().enumerate() {
                    let from = match detector.last_judged(i) {
                        Some(last) => last + 1,
                        None => store
                            .newest_before(s.id, horizon.saturating_add(1))?
                            .unwrap_or(Timestamp::MAX),
                    };
                    since = since.min(from);
                }
                // Nothing stored yet: whatever arrives is new.
                if since == Timestamp::MAX {
                    Timestamp::MIN
                } else {
                    since
                }
            }
        };
        let mut runner = Runner::new(detector, tz, refit);
        for (i, s) in series.iter().enumerate() {
            let days = i64::from(runner.detector.settings()[i].trailing_days);
            for r in store.readings(s.id, since.saturating_sub(days * DAY), since)? {
                runner.remember(i, r.ts, r.value);
            }
        }
        runner.fit_missing(since);
        Ok((
            DatabaseDetector {
                runner,
                series,
                outbound: Outbound::from_config(config),
                tz,
                ahead,
                reported_ahead: Timestamp::MIN,
            },
            since,
        ))
    }

    /// The series judged, in the detector's order.
    pub fn series(&self) -> &[SeriesInfo] {
        &self.series
    }

    /// Judges the stored readings with `since <= ts < until`, one row (instant) at a time
    /// through `row` (which advances the runner to the row's time and observes its readings,
    /// returning the transitions), then, when `clock` is later than the last row, advances to
    /// it (stale sensors). Writes everything, day by day, each day in one transaction.
    pub fn judge<E: From<JudgeError>>(
        &mut self,
        store: &mut Store,
        since: Timestamp,
        until: Timestamp,
        clock: Option<Timestamp>,
        row: &mut RowStep<'_, E>,
    ) -> Result<Recorded, E> {
        let mut total = Recorded::default();
        let end = match clock {
            Some(c) => until.min(c.saturating_add(1)),
            None => until,
        };
        // Never past the wall clock's horizon (see `open`).
        let horizon = horizon(self.ahead);
        let end = end.min(horizon.saturating_add(1));
        let spans: Vec<(Timestamp, Timestamp)> = self
            .series
            .iter()
            .map(|s| store.span(s.id))
            .collect::<Result<Vec<_>, _>>()
            .map_err(JudgeError::from)?
            .into_iter()
            .flatten()
            .collect();
        let stored_newest = spans.iter().map(|s| s.1).max().unwrap_or(Timestamp::MIN);
        if stored_newest > horizon && stored_newest > self.reported_ahead {
            self.reported_ahead = stored_newest;
            tracing::warn!(
                "readings up to {} are stored, ahead of the clock ({}): they are not judged (a mistyped date or a clock set wrong; delete them)",
                format_local(stored_newest, self.tz),
                format_local(horizon, self.tz)
            );
        }
        let oldest = spans.iter().map(|s| s.0).min().unwrap_or(Timestamp::MAX);
        let newest = spans
            .iter()
            .map(|s| s.1)
            .max()
            .unwrap_or(Timestamp::MIN)
            .min(end.saturating_sub(1));
        // Each series from its first reading not judged yet: what the detector already judged
        // would only be found late, and a silent series must not pin the others' start.
        let starts: Vec<Timestamp> = (0..self.series.len())
            .map(|i| {
                self.runner
                    .detector
                    .last_judged(i)
                    .map_or(since, |last| since.max(last + 1))
            })
            .collect();
        let mut from = starts
            .iter()
            .copied()
            .min()
            .unwrap_or(since)
            .max(oldest.min(newest));
        loop {
            let to = from
                .saturating_add(CHUNK_SECONDS)
                .min(newest.saturating_add(1))
                .max(from);
            let last = to >= newest.saturating_add(1);
            let mut rows: BTreeMap<Timestamp, Vec<Option<f64>>> = BTreeMap::new();
            for (i, s) in self.series.iter().enumerate() {
                // The day-ahead forecasts of the hours this chunk closes, for the
                // forecast-residual check (none stored: the check is off).
                let forecasts: Vec<HourForecast> = store
                    .day_ahead(s.id, from.saturating_sub(3600), to.saturating_add(3600))
                    .map_err(JudgeError::from)?
                    .into_iter()
                    .map(|r| HourForecast {
                        hour: r.point.target,
                        value: r.point.value,
                        lower: r.point.lower,
                        upper: r.point.upper,
                    })
                    .collect();
                self.runner.detector.set_forecasts(i, &forecasts);
                for r in store
                    .readings(s.id, from.max(starts[i]), to)
                    .map_err(JudgeError::from)?
                {
                    rows.entry(r.ts)
                        .or_insert_with(|| vec![None; self.series.len()])[i] = Some(r.value);
                }
            }
            let mut batch = Batch::default();
            self.collect(&mut batch);
            for (&ts, values) in &rows {
                let alerts = row(&mut self.runner, ts, values)?;
                self.collect(&mut batch);
                self.transitions(&alerts, &mut batch);
            }
            if last && let Some(c) = clock.filter(|c| rows.keys().next_back().is_none_or(|l| c > l))
            {
                let alerts = self.runner.advance(c);
                self.collect(&mut batch);
                self.transitions(&alerts, &mut batch);
            }
            if !rows.is_empty() || !batch.is_empty() {
                self.write(store, &batch).map_err(JudgeError::from)?;
            }
            total.transitions += batch.changes.len();
            total.queued += batch.messages.len();
            total.criteria += batch.criteria.len();
            total.nights += batch.nights.len();
            if last {
                return Ok(total);
            }
            from = to;
        }
    }

    /// Takes the criteria fitted and the nights ended since the last call into `batch`.
    fn collect(&mut self, batch: &mut Batch) {
        for i in self.runner.take_fitted() {
            if let Some(c) = self.runner.detector.criteria(i) {
                let body = serde_json::to_string(c).expect("criteria serialise");
                batch.criteria.push((self.series[i].id, c.fitted_at, body));
            }
        }
        for (i, n) in self.runner.detector.take_nights() {
            batch.nights.push(NightRecord {
                series: self.series[i].id,
                night: n.night.to_string(),
                minimum: Some(n.minimum).filter(|m| m.is_finite()),
                baseline: n.baseline,
                stage: n.stage,
            });
        }
    }

    fn transitions(&self, alerts: &[Alert], batch: &mut Batch) {
        for a in alerts {
            if let Some(out) = &self.outbound {
                batch.messages.push(crate::envelope::alert(
                    &out.device_id,
                    a.message(out.machine_number, self.tz),
                    a.time,
                ));
            }
            let index = self
                .runner
                .detector
                .index(&a.series)
                .expect("alerts name known series");
            batch.changes.push(AlarmChange {
                id: a.alarm_id as i64,
                series: self.series[index].id,
                kind: a.kind.name().to_string(),
                direction: a.direction.name().to_string(),
                stage: a.stage,
                state: a.state.name().to_string(),
                time: a.time,
                value: a.value,
                expected: a.expected,
                percentile: a.percentile,
            });
        }
    }

    fn write(&self, store: &mut Store, batch: &Batch) -> Result<(), StoreError> {
        let state = self.runner.detector.state_json();
        store.record_detection(DetectionWrite {
            state: &state,
            alarms: &batch.changes,
            criteria: &batch.criteria,
            nights: &batch.nights,
            outbox: &batch.messages,
            limits: self
                .outbound
                .as_ref()
                .map_or(OutboxLimits::UNBOUNDED, |o| o.limits),
        })
    }
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.criteria.is_empty() && self.nights.is_empty()
    }
}

#[derive(Default)]
struct Batch {
    changes: Vec<AlarmChange>,
    messages: Vec<OutboxMessage>,
    criteria: Vec<(SeriesId, Timestamp, String)>,
    nights: Vec<NightRecord>,
}

/// The plain row step: advance to `ts`, observe each reading.
pub fn observe_row(runner: &mut Runner, ts: Timestamp, values: &[Option<f64>]) -> Vec<Alert> {
    let mut alerts = runner.advance(ts);
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = *v {
            alerts.extend(runner.observe(i, ts, v).1);
        }
    }
    alerts
}
