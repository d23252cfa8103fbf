//! The model folder of a series: written aside (`.<name>.new` beside it), then renamed into
//! place, so that a crash while saving leaves the old model, never half of a new one; read back
//! only when it holds the forecaster the series names.
//!
//! Invariants: nothing but [`install`] renames a folder into place; a folder that cannot be read
//! is never used (it is logged, and a new model is trained).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use hydrowatch_forecast::neural::FittedNeural;
use hydrowatch_forecast::{Fitted, Forecaster, History, Predict, artifact};

use crate::error::JobError;

/// Writes the training log of `model` as CSV: `net,epoch,train_loss,val_loss,learning_rate`.
pub fn write_loss_history(model: &FittedNeural, path: &Path) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    writeln!(out, "net,epoch,train_loss,val_loss,learning_rate")?;
    for (net, log) in model.log.iter().enumerate() {
        for e in log {
            writeln!(
                out,
                "{},{},{},{},{}",
                net + 1,
                e.epoch,
                e.train_loss,
                e.val_loss,
                e.learning_rate
            )?;
        }
    }
    out.flush()
}

/// The network of a trained forecaster (a network, or a combination's member) and the folder
/// it is saved in, inside the model's folder `dir`.
pub fn network_of<'a>(model: &'a Fitted, dir: &Path) -> Option<(&'a FittedNeural, PathBuf)> {
    match model {
        Fitted::Network(n) => Some((n.as_ref(), dir.to_path_buf())),
        Fitted::Combination(c) => c.network.as_ref().map(|n| (n, dir.join("network"))),
        _ => None,
    }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> JobError {
    let path = path.to_path_buf();
    move |source| JobError::Io { path, source }
}

/// `.<name>.<what>` beside the folder `dir`.
fn beside(dir: &Path, what: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map_or("model".into(), |n| n.to_string_lossy().into_owned());
    dir.parent()
        .unwrap_or(Path::new("."))
        .join(format!(".{name}.{what}"))
}

/// Where a new model for the folder `dir` is written before it is renamed into place:
/// `.<name>.new` beside it.
pub(crate) fn fresh_dir(dir: &Path) -> PathBuf {
    beside(dir, "new")
}

/// Writes `model` (and its network's loss history) as the new folder `out` (removed first when
/// a crash left one there).
pub(crate) fn write_model(model: &Fitted, history: &History, out: &Path) -> Result<(), JobError> {
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io_error(out))?;
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let context = artifact::Context {
        step: 3600,
        timezone: history.timezone,
        holidays: history.holidays.clone(),
    };
    artifact::save_fitted(model, &context, out)?;
    if let Some((net, folder)) = network_of(model, out) {
        let path = folder.join("loss_history.csv");
        write_loss_history(net, &path).map_err(io_error(&path))?;
    }
    Ok(())
}

/// Puts the model folder `fresh` in the place of `dir` by renaming (the old one moved aside
/// first and removed after), so that a crash at any point leaves a whole model in `dir` or
/// none, never half of one.
pub(crate) fn install(fresh: &Path, dir: &Path) -> Result<(), JobError> {
    let old = beside(dir, "old");
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io_error(&old))?;
    }
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(io_error(dir))?;
    }
    std::fs::rename(fresh, dir).map_err(io_error(dir))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io_error(&old))?;
    }
    Ok(())
}

/// Saves `model` as the folder `dir`, replacing what was there in one rename.
pub fn save_model(model: &Fitted, history: &History, dir: &Path) -> Result<(), JobError> {
    let fresh = fresh_dir(dir);
    write_model(model, history, &fresh)?;
    install(&fresh, dir)
}

/// Removes what a training left in `fresh` (nothing to do when it left nothing).
pub(crate) fn clear(fresh: &Path) {
    if fresh.exists()
        && let Err(e) = std::fs::remove_dir_all(fresh)
    {
        tracing::warn!("cannot remove {}: {e}", fresh.display());
    }
}

/// The model saved in `dir` if it is the forecaster `forecaster` names and can be read; a
/// folder that cannot be read is logged (and replaced by the caller).
pub(crate) fn saved_model(dir: &Path, forecaster: &Forecaster) -> Option<Fitted> {
    let saved = dir.join("model.json").is_file() || dir.join("combination.json").is_file();
    if !saved {
        return None;
    }
    match artifact::load_fitted(dir) {
        Ok((m, _)) if m.name() == forecaster.name() => Some(m),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "{e}; training a new model");
            None
        }
    }
}
