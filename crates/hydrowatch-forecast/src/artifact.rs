//! Model artefacts: the folder that is the contract between training and forecasting.
//!
//! ```text
//! DIR/model.json   format version, crate version, configuration, scaler, band, gap rules,
//!                  time zone and holidays of the calendar features, training report
//! DIR/net0.bpk     the weights, in burn's own format (net0..net6 for the direct strategy)
//! ```
//!
//! Loading refuses, with a message that says what to do, a folder written in another format
//! version, by a hydrowatch whose model code differs (another minor version), or for another
//! number of input features, and any weight file that does not load into the configured network.

use std::path::Path;

use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::neural::{EpochLog, FEATURES, FittedNeural, NeuralConfig, TrainingReport};
use crate::scale::MinMax;
use crate::{Band, ForecastError, Holidays};

/// Version of the folder layout, of `model.json` and of the weights' layout (2: the fused LSTM;
/// 3: weekly and daily seasonal lags; 4: fused GRU, two biases per fused layer).
pub const FORMAT: u32 = 4;

/// The contents of `model.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelFile {
    /// [`FORMAT`] of the writer.
    pub format: u32,
    /// Version of hydrowatch-forecast that trained it.
    pub crate_version: String,
    /// Input features per time step the networks expect.
    pub features: usize,
    /// Interval of the series, seconds (3600 for hourly).
    pub step: i64,
    /// IANA zone of the calendar features.
    pub timezone: String,
    /// Days off of the calendar features.
    pub holidays: Holidays,
    /// What was built and how it was trained.
    pub config: NeuralConfig,
    /// Value scaling.
    pub scaler: MinMax,
    /// 10-90% band.
    pub band: Band,
    /// Training span and scores.
    pub report: TrainingReport,
    /// Losses per epoch of each network.
    pub log: Vec<Vec<EpochLog>>,
}

/// What a loaded artefact holds besides the model: the context it was trained in.
#[derive(Debug, Clone)]
pub struct Context {
    /// Interval of the series, seconds.
    pub step: i64,
    /// IANA zone of the calendar features.
    pub timezone: chrono_tz::Tz,
    /// Days off.
    pub holidays: Holidays,
}

fn err(dir: &Path, reason: impl Into<String>) -> ForecastError {
    ForecastError::Artifact {
        path: dir.display().to_string(),
        reason: reason.into(),
    }
}

/// The `major.minor` of this crate: model code changes only with it.
fn compatible_version() -> &'static str {
    let v = env!("CARGO_PKG_VERSION");
    let second_dot = v.match_indices('.').nth(1).map_or(v.len(), |(i, _)| i);
    &v[..second_dot]
}

/// Writes `model` into the folder `dir` (created; files inside are replaced).
pub fn save(model: &FittedNeural, context: &Context, dir: &Path) -> Result<(), ForecastError> {
    std::fs::create_dir_all(dir).map_err(|e| err(dir, format!("cannot create the folder: {e}")))?;
    for (i, net) in model.nets.iter().enumerate() {
        let path = dir.join(format!("net{i}.bpk"));
        net.save_into(&mut BurnpackStore::from_file(&path).overwrite(true))
            .map_err(|e| err(dir, format!("cannot write {}: {e}", path.display())))?;
    }
    let file = ModelFile {
        format: FORMAT,
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        features: FEATURES,
        step: context.step,
        timezone: context.timezone.name().to_string(),
        holidays: context.holidays.clone(),
        config: model.config.clone(),
        scaler: model.scaler,
        band: model.band.clone(),
        report: model.report.clone(),
        log: model.log.clone(),
    };
    let json = serde_json::to_string_pretty(&file).map_err(|e| err(dir, e.to_string()))?;
    std::fs::write(dir.join("model.json"), json)
        .map_err(|e| err(dir, format!("cannot write model.json: {e}")))
}

/// Reads the folder `dir`.
pub fn load(dir: &Path) -> Result<(FittedNeural, Context), ForecastError> {
    let json_path = dir.join("model.json");
    let text = std::fs::read_to_string(&json_path).map_err(|e| {
        err(
            dir,
            format!(
                "cannot read model.json ({e}): is this a folder written by `hydrowatch train`?"
            ),
        )
    })?;
    let format: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(dir, format!("model.json is corrupt: {e}")))?;
    let found = format.get("format").and_then(serde_json::Value::as_u64);
    if found != Some(u64::from(FORMAT)) {
        return Err(err(
            dir,
            format!(
                "model format {found:?}, this hydrowatch reads format {FORMAT}: retrain the model"
            ),
        ));
    }
    let file: ModelFile = serde_json::from_value(format)
        .map_err(|e| err(dir, format!("model.json is corrupt: {e}")))?;
    if !file
        .crate_version
        .starts_with(&format!("{}.", compatible_version()))
        && file.crate_version != compatible_version()
    {
        return Err(err(
            dir,
            format!(
                "trained by hydrowatch-forecast {}, this is {}: retrain the model",
                file.crate_version,
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    if file.features != FEATURES {
        return Err(err(
            dir,
            format!(
                "the model expects {} input features per hour, this hydrowatch builds {FEATURES}: retrain the model",
                file.features
            ),
        ));
    }
    let timezone = file.timezone.parse().map_err(|_| {
        err(
            dir,
            format!("unknown time zone {:?} in model.json", file.timezone),
        )
    })?;
    let (_, count) = file.config.strategy.layout();
    let device = Device::flex();
    let net_config = file.config.net_config();
    let mut nets = Vec::with_capacity(count);
    for i in 0..count {
        let path = dir.join(format!("net{i}.bpk"));
        let mut net = net_config.init(&device);
        let result = net
            .load_from(&mut BurnpackStore::from_file(&path))
            .map_err(|e| err(dir, format!("cannot load {}: {e}", path.display())))?;
        if !result.errors.is_empty() || !result.missing.is_empty() {
            return Err(err(
                dir,
                format!(
                    "{} does not fit the configured network: {result}",
                    path.display()
                ),
            ));
        }
        nets.push(net);
    }
    let model = FittedNeural {
        config: file.config,
        scaler: file.scaler,
        band: file.band,
        report: file.report,
        log: file.log,
        nets,
    };
    Ok((
        model,
        Context {
            step: file.step,
            timezone,
            holidays: file.holidays,
        },
    ))
}
