//! Model artefacts: the folder that is the contract between training and forecasting.
//!
//! ```text
//! DIR/model.json   format version, crate version, configuration, scaler, band, gap rules,
//!                  time zone and holidays of the calendar features, training report
//! DIR/net0.bpk     the weights, in burn's own format (net0..net6 for the direct strategy)
//! ```
//!
//! A combination's folder holds `combination.json` (its members, weights per day ahead, band
//! and report) and, when it has a network, the network's folder as `network/`.
//!
//! Loading refuses, with a message that says what to do, a folder written in another format
//! version, by a hydrowatch whose model code differs (another minor version), or for another
//! number of input features, and any weight file that does not load into the configured network.

use std::path::Path;

use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::combination::{Combination, CombinationReport, FittedCombination};
use crate::forecaster::Fitted;
use crate::neural::{EpochLog, FEATURES, FittedNeural, NeuralConfig, TrainingReport};
use crate::scale::MinMax;
use crate::{Band, ForecastError, Holidays, Predict};

/// The contents of a combination's `combination.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CombinationFile {
    /// [`FORMAT`] of the writer.
    pub format: u32,
    /// Version of hydrowatch-forecast that fitted it.
    pub crate_version: String,
    /// Interval of the series, seconds.
    pub step: i64,
    /// IANA zone of the series.
    pub timezone: String,
    /// Days off.
    pub holidays: Holidays,
    /// Its members.
    pub config: Combination,
    /// Member names, in the order of the weights.
    pub members: Vec<String>,
    /// Per day ahead, each member's weight.
    pub weights: Vec<Vec<f64>>,
    /// 10-90% band.
    pub band: Band,
    /// What fitting saw.
    pub report: CombinationReport,
}

/// Writes a trained forecaster (a network or a combination) into the folder `dir`; a baseline
/// has nothing to save and is an error.
pub fn save_fitted(model: &Fitted, context: &Context, dir: &Path) -> Result<(), ForecastError> {
    match model {
        Fitted::Network(net) => save(net, context, dir),
        Fitted::Combination(c) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| err(dir, format!("cannot create the folder: {e}")))?;
            let network = dir.join("network");
            if let Some(net) = &c.network {
                save(net, context, &network)?;
            } else if network.exists() {
                std::fs::remove_dir_all(&network)
                    .map_err(|e| err(dir, format!("cannot remove the old network: {e}")))?;
            }
            let file = CombinationFile {
                format: FORMAT,
                crate_version: env!("CARGO_PKG_VERSION").to_string(),
                step: context.step,
                timezone: context.timezone.name().to_string(),
                holidays: context.holidays.clone(),
                config: c.config.clone(),
                members: c.members.clone(),
                weights: c.weights.clone(),
                band: c.band.clone(),
                report: c.report.clone(),
            };
            let json = serde_json::to_string_pretty(&file).map_err(|e| err(dir, e.to_string()))?;
            std::fs::write(dir.join("combination.json"), json)
                .map_err(|e| err(dir, format!("cannot write combination.json: {e}")))
        }
        other => Err(err(
            dir,
            format!("{} is a baseline: it has no model to save", other.name()),
        )),
    }
}

/// Reads a folder written by [`save_fitted`]: a combination when it holds `combination.json`,
/// else a network.
pub fn load_fitted(dir: &Path) -> Result<(Fitted, Context), ForecastError> {
    let path = dir.join("combination.json");
    if !path.is_file() {
        return load(dir).map(|(net, context)| (Fitted::Network(Box::new(net)), context));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| err(dir, format!("cannot read combination.json: {e}")))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| err(dir, format!("combination.json is corrupt: {e}")))?;
    check_format(dir, &value)?;
    let file: CombinationFile = serde_json::from_value(value)
        .map_err(|e| err(dir, format!("combination.json is corrupt: {e}")))?;
    check_version(dir, &file.crate_version)?;
    let expected = 2 + usize::from(file.config.network.is_some());
    if file.weights.iter().any(|w| w.len() != file.members.len())
        || !(2..=expected).contains(&file.members.len())
    {
        return Err(err(
            dir,
            "combination.json: the weights do not match the members: retrain the model",
        ));
    }
    let network = if file.members.len() == 3 {
        Some(load(&dir.join("network"))?.0)
    } else {
        None
    };
    let timezone = file.timezone.parse().map_err(|_| {
        err(
            dir,
            format!("unknown time zone {:?} in combination.json", file.timezone),
        )
    })?;
    Ok((
        Fitted::Combination(Box::new(FittedCombination {
            config: file.config,
            network,
            members: file.members,
            weights: file.weights,
            band: file.band,
            report: file.report,
        })),
        Context {
            step: file.step,
            timezone,
            holidays: file.holidays,
        },
    ))
}

/// Refuses a file of another [`FORMAT`].
fn check_format(dir: &Path, value: &serde_json::Value) -> Result<(), ForecastError> {
    let found = value.get("format").and_then(serde_json::Value::as_u64);
    if found == Some(u64::from(FORMAT)) {
        Ok(())
    } else {
        Err(err(
            dir,
            format!(
                "model format {found:?}, this hydrowatch reads format {FORMAT}: retrain the model"
            ),
        ))
    }
}

/// Refuses a file written by another minor version of this crate.
fn check_version(dir: &Path, crate_version: &str) -> Result<(), ForecastError> {
    if crate_version.starts_with(&format!("{}.", compatible_version()))
        || crate_version == compatible_version()
    {
        Ok(())
    } else {
        Err(err(
            dir,
            format!(
                "trained by hydrowatch-forecast {crate_version}, this is {}: retrain the model",
                env!("CARGO_PKG_VERSION")
            ),
        ))
    }
}

/// Version of the folder layout, of `model.json` and of the weights' layout (2: the fused LSTM;
/// 3: weekly and daily seasonal lags; 4: fused GRU, two biases per fused layer; 5: trained on
/// the wall clock, combinations).
pub const FORMAT: u32 = 5;

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
    check_format(dir, &format)?;
    let file: ModelFile = serde_json::from_value(format)
        .map_err(|e| err(dir, format!("model.json is corrupt: {e}")))?;
    check_version(dir, &file.crate_version)?;
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
