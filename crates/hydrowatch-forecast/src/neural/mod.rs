//! Neural forecasters: burn networks ([`net`]) trained by [`train`], arranged by a [`Strategy`]
//! into a 168-hour forecast, saved and loaded as artefact folders ([`crate::artifact`]).
//!
//! Invariants:
//! - the scaler is fitted on the training span only; validation and test windows come after it;
//! - a window is used only if every hour it reads (input window, seasonal lags, targets) is
//!   usable under the gap rules: nothing is learnt from invented data;
//! - forecasting at origin `o` reads only hours before `o` (recursive forecasts read their own
//!   earlier outputs, never actual values at or after `o`).

pub mod fused;
mod gru_kernel;
mod kernel;
mod lstm_kernel;
pub mod net;
pub mod train;

use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use hydrowatch_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::baseline::{BLEND_DAYS, BLEND_WEEKS, blend_weights, seasonal_lags};
use crate::calendar::{CALENDAR_FEATURES, DayKind, day_kinds, features};
use crate::clock::WallClock;
use crate::scale::MinMax;
use crate::{
    Band, Fit, Forecast, ForecastError, GapRules, HORIZON, History, Predict, Scores, WEEK,
    fill_gaps,
};
pub use net::{ModelKind, Net, NetConfig};
pub use train::{Dataset, EpochLog, Loss, Optimizer, TrainConfig};

/// Input features per time step: the scaled value, the scaled value a week earlier, and the
/// calendar features.
pub const FEATURES: usize = 2 + CALENDAR_FEATURES;
/// Seasonal lags per output hour (see [`crate::baseline::seasonal_lags`]).
const LAGS: usize = BLEND_WEEKS + BLEND_DAYS;
/// The trained network's share in the forecast of days 2-7 where it beat the seasonal blend on
/// validation (the blend has the rest; day 1 is the network's alone). Validation spans the
/// season before the forecast, and on days 2-7 a network's gain over the blend there often does
/// not carry into the next season (docs/FORECASTING.md, "What was tried"): the equal-weight
/// combination, not tuned, takes 1.2 points off PI3 over the 10 DMAs and leaves PI1 as it was.
const LATER_DAYS_SHARE: f32 = 0.5;
/// The most history a network trains on: the last two years (docs/BENCHMARKS.md, "A year-old
/// device"). Windows are made a batch at a time, so memory does not grow with the history; the
/// time of an epoch does, and a third year added 50% to it without a season the two before lack.
pub const MAX_TRAINING_HOURS: usize = 2 * 365 * 24;
/// How far back a window reads: its input (and a week before it), or its oldest seasonal lag.
fn lookback(window: usize) -> usize {
    (window + WEEK).max(BLEND_WEEKS * WEEK)
}

/// How the 168 hours are produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// One network emits all 168 hours.
    Mimo,
    /// Seven networks, one per day ahead, each from actual data.
    Direct,
    /// One 24-hour network, applied seven times to its own output.
    Recursive,
}

impl Strategy {
    /// Its name in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Mimo => "mimo",
            Strategy::Direct => "direct",
            Strategy::Recursive => "recursive",
        }
    }

    /// Hours each network emits, and how many networks there are.
    pub fn layout(self) -> (usize, usize) {
        match self {
            Strategy::Mimo => (HORIZON, 1),
            Strategy::Direct => (24, HORIZON / 24),
            Strategy::Recursive => (24, 1),
        }
    }

    /// Hours after an origin that a training window needs as targets.
    fn target_span(self) -> usize {
        match self {
            Strategy::Recursive => 24,
            _ => HORIZON,
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mimo" => Ok(Strategy::Mimo),
            "direct" => Ok(Strategy::Direct),
            "recursive" => Ok(Strategy::Recursive),
            other => Err(format!(
                "unknown strategy {other:?}: use mimo, direct or recursive"
            )),
        }
    }
}

/// A neural forecaster configuration: what to build and how to train it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeuralConfig {
    /// The encoder.
    pub kind: ModelKind,
    /// How the horizon is produced.
    pub strategy: Strategy,
    /// Hours of input.
    pub window: usize,
    /// Stacked encoder layers.
    pub layers: usize,
    /// Hidden units.
    pub units: usize,
    /// Dropout.
    pub dropout: f64,
    /// Transformer attention heads.
    pub heads: usize,
    /// Training.
    pub train: TrainConfig,
    /// Gap rules of the preprocessing.
    pub gaps: GapRules,
}

impl NeuralConfig {
    /// The default model: one LSTM layer of 64 units over 48 hours, MIMO, AdamW, L1 loss.
    pub fn new(kind: ModelKind, strategy: Strategy) -> NeuralConfig {
        NeuralConfig {
            kind,
            strategy,
            window: 48,
            layers: 1,
            units: 64,
            dropout: 0.1,
            heads: 4,
            train: TrainConfig::default(),
            gaps: GapRules::default(),
        }
    }

    /// The original prototype: 2 LSTM layers of 50 units, dense output, SGD with learning rate
    /// 0.01 and momentum 0.9, MSE loss.
    pub fn prototype() -> NeuralConfig {
        NeuralConfig {
            layers: 2,
            units: 50,
            dropout: 0.0,
            train: TrainConfig {
                learning_rate: 0.01,
                optimizer: Optimizer::Sgd { momentum: 0.9 },
                loss: Loss::Mse,
                ..TrainConfig::default()
            },
            ..NeuralConfig::new(ModelKind::Lstm, Strategy::Mimo)
        }
    }

    /// `kind/strategy`, e.g. `lstm/mimo`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.kind.name(), self.strategy.name())
    }

    pub(crate) fn net_config(&self) -> NetConfig {
        let (outputs, _) = self.strategy.layout();
        NetConfig {
            kind: self.kind,
            layers: self.layers,
            units: self.units,
            dropout: self.dropout,
            heads: self.heads,
            features: FEATURES,
            lag_init: blend_weights().to_vec(),
            outputs,
        }
    }
}

/// Where the training data came from and how well the model did on data it never saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingReport {
    /// First hour of the history trained on.
    pub from: Timestamp,
    /// End of the history trained on (exclusive).
    pub to: Timestamp,
    /// Windows used for training, validation and test (8:1:1, in time order).
    pub windows: [usize; 3],
    /// Origin of the first test window: forecasts from here on were never used for any choice.
    pub test_from: Timestamp,
    /// Epochs run, per network.
    pub epochs: Vec<usize>,
    /// Per day ahead (per day of each network's outputs): whether the trained network forecasts
    /// it (days 2-7: half of it, with the seasonal blend), or the seasonal blend alone because
    /// training did not beat it on validation.
    #[serde(default)]
    pub network_days: Vec<bool>,
    /// Scores of daily forecasts over the validation span.
    pub validation: Scores,
    /// Scores of daily forecasts over the test span (never used for any choice).
    pub test: Option<Scores>,
    /// Wall time of the training, seconds.
    pub seconds: f64,
}

/// A trained neural forecaster.
pub struct FittedNeural {
    /// Its configuration.
    pub config: NeuralConfig,
    /// Scaling of the values, fitted on the training span.
    pub scaler: MinMax,
    /// The 10-90% band, from validation residuals.
    pub band: Band,
    /// What training saw and scored.
    pub report: TrainingReport,
    /// The per-epoch losses of each network.
    pub log: Vec<Vec<EpochLog>>,
    /// The networks (one, or seven for the direct strategy).
    pub nets: Vec<Net>,
}

/// Scaled values, calendar features and day kinds of a history, the last two extended `extra`
/// hours past its end.
struct Prepared {
    scaled: Vec<f64>,
    usable: Vec<bool>,
    calendar: Vec<[f32; CALENDAR_FEATURES]>,
    days: Vec<DayKind>,
}

/// The calendar of a [`Prepared`] history from some hour on: what a window reads besides values.
#[derive(Clone, Copy)]
struct Calendar<'a> {
    features: &'a [[f32; CALENDAR_FEATURES]],
    days: &'a [DayKind],
}

impl Prepared {
    fn calendar(&self) -> Calendar<'_> {
        Calendar {
            features: &self.calendar,
            days: &self.days,
        }
    }
}

impl<'a> Calendar<'a> {
    /// The calendar from hour `start` on (index 0 is hour `start`).
    fn starting_at(self, start: usize) -> Calendar<'a> {
        Calendar {
            features: &self.features[start..],
            days: &self.days[start..],
        }
    }
}

fn prepare(history: &History, gaps: GapRules, scaler: &MinMax, extra: usize) -> Prepared {
    let filled = fill_gaps(&history.series.values, gaps);
    let n = filled.values.len();
    let calendar = (0..n + extra)
        .map(|i| features(history.series.time(i), history.timezone, &history.holidays))
        .collect();
    Prepared {
        scaled: filled.values.iter().map(|v| scaler.scale(*v)).collect(),
        usable: filled.usable,
        calendar,
        days: day_kinds(history, 0, extra),
    }
}

/// Inputs of one window: origin `o`, the network's output block starting `offset` hours after it.
fn sample(
    values: &[f64],
    calendar: Calendar<'_>,
    o: usize,
    window: usize,
    offset: usize,
    outputs: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut seq = Vec::with_capacity(window * FEATURES);
    for j in o - window..o {
        seq.push(values[j] as f32);
        seq.push(values[j - WEEK] as f32);
        seq.extend_from_slice(&calendar.features[j]);
    }
    // Lag-major: all output hours of the first lag, then the second...
    let mut lags = vec![0.0; LAGS * outputs];
    for h in 0..outputs {
        for (k, x) in seasonal_lags(values, calendar.days, o, offset + h)
            .iter()
            .enumerate()
        {
            lags[k * outputs + h] = *x as f32;
        }
    }
    (seq, lags)
}

/// The training windows at origins `os` of `values`, the network's output block starting `offset`
/// hours after each, made a batch at a time.
fn windows<'a>(
    values: &'a [f64],
    calendar: Calendar<'a>,
    os: &'a [usize],
    window: usize,
    offset: usize,
    outputs: usize,
) -> Dataset<'a> {
    Dataset::new(
        [window, FEATURES, LAGS * outputs, outputs],
        os.len(),
        move |i, seq, lags, target| {
            let o = os[i];
            let (s, l) = sample(values, calendar, o, window, offset, outputs);
            seq.extend_from_slice(&s);
            lags.extend_from_slice(&l);
            target.extend(
                values[o + offset..o + offset + outputs]
                    .iter()
                    .map(|v| *v as f32),
            );
        },
    )
}

/// One network's outputs for the window at `origin` of `values`.
fn run_net(
    config: &NeuralConfig,
    net: &Net,
    values: &[f64],
    calendar: Calendar<'_>,
    origin: usize,
    offset: usize,
    device: &Device,
) -> Vec<f64> {
    let (outputs, _) = config.strategy.layout();
    let (seq, lags) = sample(values, calendar, origin, config.window, offset, outputs);
    let (s, l) = (
        Tensor::from_data(TensorData::new(seq, [1, config.window, FEATURES]), device),
        Tensor::from_data(TensorData::new(lags, [1, LAGS * outputs]), device),
    );
    let out = net
        .forward(s, l)
        .into_data()
        .try_to_vec::<f32>()
        .expect("the network outputs f32");
    out.into_iter().map(f64::from).collect()
}

/// Forecast (scaled) at origin `o` of `values`, reading only `values[..o]`.
fn forecast_scaled(
    config: &NeuralConfig,
    nets: &[Net],
    values: &[f64],
    calendar: Calendar<'_>,
    o: usize,
    device: &Device,
) -> Vec<f64> {
    match config.strategy {
        Strategy::Mimo => run_net(config, &nets[0], values, calendar, o, 0, device),
        Strategy::Direct => nets
            .iter()
            .enumerate()
            .flat_map(|(d, net)| run_net(config, net, values, calendar, o, d * 24, device))
            .collect(),
        Strategy::Recursive => {
            // A private copy of the recent past, extended day by day with the model's output.
            let start = o - lookback(config.window);
            let mut buf: Vec<f64> = values[start..o].to_vec();
            buf.resize(o - start + HORIZON, f64::NAN);
            let calendar = calendar.starting_at(start);
            let mut out = Vec::with_capacity(HORIZON);
            for day in 0..HORIZON / 24 {
                let origin = o - start + day * 24;
                let day_out = run_net(config, &nets[0], &buf, calendar, origin, 0, device);
                buf[origin..origin + 24].copy_from_slice(&day_out);
                out.extend(day_out);
            }
            out
        }
    }
}

impl Fit for NeuralConfig {
    type Fitted = FittedNeural;

    fn fit(&self, history: &History) -> Result<FittedNeural, ForecastError> {
        self.fit_with_progress(history, |_, _| {})
    }
}

impl NeuralConfig {
    /// [`Fit::fit`], calling `progress(network index, epoch)` after each epoch. The windows,
    /// features and lags are taken on the history's wall clock.
    pub fn fit_with_progress(
        &self,
        real: &History,
        mut progress: impl FnMut(usize, &EpochLog),
    ) -> Result<FittedNeural, ForecastError> {
        let started = Instant::now();
        let real = &real.last(MAX_TRAINING_HOURS);
        let clock = WallClock::of(real, None)?;
        let history = &clock.local;
        if self.kind == ModelKind::Transformer && !self.units.is_multiple_of(self.heads.max(1)) {
            return Err(ForecastError::Input(format!(
                "transformer: {} units are not divisible by {} heads",
                self.units, self.heads
            )));
        }
        let back = lookback(self.window);
        let span = self.strategy.target_span();
        let filled = fill_gaps(&history.series.values, self.gaps);
        let n = filled.values.len();
        // Prefix sums of unusable hours: a window is valid when its range has none.
        let mut bad = vec![0usize; n + 1];
        for i in 0..n {
            bad[i + 1] = bad[i] + usize::from(!filled.usable[i]);
        }
        let origins: Vec<usize> = (back..=n.saturating_sub(span))
            .filter(|&o| bad[o + span] == bad[o - back])
            .collect();
        let needed = 100;
        if origins.len() < needed {
            return Err(ForecastError::TooShort {
                what: format!(
                    "training {} ({} windows of {} + {} hours)",
                    self.name(),
                    needed,
                    back,
                    span
                ),
                needed: back + span + needed,
                available: n - bad[n],
            });
        }
        let (n_train, n_val) = (origins.len() * 8 / 10, origins.len() / 10);
        let (train_o, rest) = origins.split_at(n_train);
        let (val_o, test_o) = rest.split_at(n_val);
        let train_end = train_o.last().copied().unwrap_or(0) + span;
        let scaler = MinMax::fit(&filled.values[..train_end])
            .ok_or_else(|| ForecastError::Input("no usable value in the training span".into()))?;
        let prep = prepare(history, self.gaps, &scaler, HORIZON);
        let net_config = self.net_config();
        let (outputs, nets_needed) = self.strategy.layout();
        let dataset = |os, offset| {
            windows(
                &prep.scaled,
                prep.calendar(),
                os,
                self.window,
                offset,
                outputs,
            )
        };
        let mut nets = Vec::with_capacity(nets_needed);
        let mut log = Vec::with_capacity(nets_needed);
        let mut network_days = Vec::new();
        let plain = Device::flex();
        for k in 0..nets_needed {
            let offset = k * outputs;
            let val = dataset(val_o, offset);
            let (net, initial, epochs) = train::train(
                &net_config,
                &self.train,
                &dataset(train_o, offset),
                &val,
                |e| progress(k, e),
            );
            // Day by day, the trained outputs are kept only where they beat the untrained
            // network (the seasonal blend) on validation: "test both, keep the better". Kept
            // days after the first forecast half and half with the blend (LATER_DAYS_SHARE).
            let day_of = |h: usize| (offset + h) / 24;
            let keep: Vec<bool> = if val.is_empty() {
                vec![true; outputs.div_ceil(24)]
            } else {
                let (trained, start) = (
                    train::output_errors(&net, &val, &plain),
                    train::output_errors(&initial, &val, &plain),
                );
                (0..outputs)
                    .collect::<Vec<_>>()
                    .chunks(24)
                    .map(|day| {
                        day.iter().map(|&h| trained[h]).sum::<f64>()
                            < day.iter().map(|&h| start[h]).sum::<f64>()
                    })
                    .collect()
            };
            network_days.extend(&keep);
            let share: Vec<f32> = (0..outputs)
                .map(|h| match (keep[h / 24], day_of(h)) {
                    (false, _) => 0.0,
                    (true, 0) => 1.0,
                    (true, _) => LATER_DAYS_SHARE,
                })
                .collect();
            nets.push(net.mix_outputs(&initial, &share));
            log.push(epochs);
        }

        // Daily forecasts over the validation and test spans: band and scores.
        let device = Device::flex();
        let score = |os: &[usize]| -> (Vec<Scores>, Vec<Vec<f64>>) {
            let mut scores = Vec::new();
            let mut residuals = Vec::new();
            // A forecast whose week runs past the data gives residuals for the hours it has
            // (the band of a young device needs them) and no scores.
            for &o in os.iter().step_by(24) {
                if o >= n {
                    break;
                }
                let fc: Vec<f64> =
                    forecast_scaled(self, &nets, &prep.scaled, prep.calendar(), o, &device)
                        .iter()
                        .map(|v| scaler.unscale(*v))
                        .collect();
                let actual = &history.series.values[o..(o + HORIZON).min(n)];
                residuals.push(actual.iter().zip(&fc).map(|(a, f)| a - f).collect());
                if actual.len() == HORIZON {
                    scores.extend(Scores::of(actual, &fc));
                }
            }
            (scores, residuals)
        };
        let (val_scores, val_residuals) = score(val_o);
        let (test_scores, _) = score(test_o);
        let report = TrainingReport {
            from: real.series.start,
            to: real.series.end(),
            windows: [train_o.len(), val_o.len(), test_o.len()],
            test_from: test_o
                .first()
                .map_or(real.series.end(), |&o| clock.real_time(o)),
            epochs: log.iter().map(Vec::len).collect(),
            network_days,
            validation: Scores::mean(&val_scores),
            test: (!test_scores.is_empty()).then(|| Scores::mean(&test_scores)),
            seconds: started.elapsed().as_secs_f64(),
        };
        Ok(FittedNeural {
            config: self.clone(),
            scaler,
            band: Band::from_residuals(&val_residuals, HORIZON),
            report,
            log,
            nets,
        })
    }
}

impl Predict for FittedNeural {
    fn predict(&self, real: &History) -> Result<Forecast, ForecastError> {
        let back = lookback(self.config.window);
        // The lookback, and the neighbouring weeks that fill gaps in it.
        let clock = WallClock::of(real, Some(back + 8 * WEEK))?;
        let history = &clock.local;
        let n = history.series.values.len();
        if n < back {
            return Err(ForecastError::TooShort {
                what: format!("forecasting with {}", self.name()),
                needed: back,
                available: n,
            });
        }
        let mut prep = prepare(history, self.config.gaps, &self.scaler, HORIZON);
        // The input window must be real; older hours (the input's week-earlier values, the
        // seasonal lags) unknown after the gap rules take the same hour of a neighbouring week,
        // as the baselines do.
        let recent = self.config.window;
        if let Some(gap) = prep.usable[n - recent..].iter().rposition(|u| !u) {
            return Err(ForecastError::Input(format!(
                "the model reads the last {recent} hours, and hour {} of them is inside a gap longer than {} hours",
                gap + 1,
                self.config.gaps.max_interpolate
            )));
        }
        if prep.usable[n - back..].iter().any(|u| !u) {
            prep.scaled = crate::baseline::seasonal_fill(history)
                .iter()
                .map(|v| self.scaler.scale(*v))
                .collect();
        }
        let scaled = forecast_scaled(
            &self.config,
            &self.nets,
            &prep.scaled,
            prep.calendar(),
            n,
            &Device::flex(),
        );
        let points: Vec<f64> = scaled.iter().map(|v| self.scaler.unscale(*v)).collect();
        Ok(clock.forecast(&points, &self.band, self.name()))
    }

    fn name(&self) -> String {
        self.config.name()
    }
}
