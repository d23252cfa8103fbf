//! The training loop: mini-batches in a seeded order, early stopping on validation loss, the
//! learning rate halved when validation stops improving, the best epoch's weights kept.
//!
//! A plain loop rather than burn's `Learner`: without burn's `tui` feature the Learner prints raw
//! debug lines, and the loop below is all this crate needs (see ../shared/burn-notes.md).

use burn::module::Module;
use burn::nn::loss::{MseLoss, Reduction};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, GradientsParams, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use super::net::{Net, NetConfig};

/// Writes window `i`'s input sequence, seasonal lags and target (scaled) onto the ends of the
/// three buffers.
pub type FillWindow<'a> = dyn Fn(usize, &mut Vec<f32>, &mut Vec<f32>, &mut Vec<f32>) + 'a;

/// Windows for a network, made a batch at a time: a year of hourly windows materialised whole
/// took 10 KB each (the seasonal lags of 168 output hours), 80 MB for a year of history; a
/// batch of 256 takes 2.6 MB whatever the history's length.
pub struct Dataset<'a> {
    /// Hours of input per window.
    pub window: usize,
    /// Features per step.
    pub features: usize,
    /// Lags per window.
    pub n_lags: usize,
    /// Outputs per window.
    pub outputs: usize,
    len: usize,
    fill: Box<FillWindow<'a>>,
}

impl std::fmt::Debug for Dataset<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("len", &self.len)
            .field("window", &self.window)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl<'a> Dataset<'a> {
    /// `len` windows of `window` steps of `features`, `n_lags` lags and `outputs` targets each,
    /// made by `fill` when a batch asks for them.
    pub fn new(
        [window, features, n_lags, outputs]: [usize; 4],
        len: usize,
        fill: impl Fn(usize, &mut Vec<f32>, &mut Vec<f32>, &mut Vec<f32>) + 'a,
    ) -> Dataset<'a> {
        Dataset {
            window,
            features,
            n_lags,
            outputs,
            len,
            fill: Box::new(fill),
        }
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there is no window.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The inputs (sequence, lags) and targets of the windows `idx` as tensors.
    pub fn batch(&self, idx: &[usize], device: &Device) -> (Tensor<3>, Tensor<2>, Tensor<2>) {
        let (w, f, l, p) = (self.window, self.features, self.n_lags, self.outputs);
        let mut seq = Vec::with_capacity(idx.len() * w * f);
        let mut lags = Vec::with_capacity(idx.len() * l);
        let mut target = Vec::with_capacity(idx.len() * p);
        for &i in idx {
            (self.fill)(i, &mut seq, &mut lags, &mut target);
        }
        (
            Tensor::from_data(TensorData::new(seq, [idx.len(), w, f]), device),
            Tensor::from_data(TensorData::new(lags, [idx.len(), l]), device),
            Tensor::from_data(TensorData::new(target, [idx.len(), p]), device),
        )
    }
}

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// AdamW with burn's defaults (the default).
    AdamW,
    /// SGD with momentum (the prototype's: momentum 0.9).
    Sgd {
        /// Momentum.
        momentum: f64,
    },
}

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Most epochs to run.
    pub epochs: usize,
    /// Windows per mini-batch.
    pub batch: usize,
    /// Initial learning rate.
    pub learning_rate: f64,
    /// The optimiser.
    pub optimizer: Optimizer,
    /// Stop after this many epochs without a better validation loss.
    pub patience: usize,
    /// Seed of the initial weights and of the batch order.
    pub seed: u64,
    /// What training minimises (absent in model.json written before it existed: MSE).
    #[serde(default)]
    pub loss: Loss,
}

/// The training loss, on scaled values. L1 is the default: on the 10 DMAs (8-week backtest)
/// it improved the default LSTM from -16.7% / -11.9% to -18.7% / -14.4% against seasonal naive
/// (PI1 / PI3, docs/FORECASTING.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// Mean squared error (the prototype's).
    #[default]
    Mse,
    /// Mean absolute error: what PI1 and PI3 score.
    L1,
}

impl Loss {
    fn of(self, prediction: Tensor<2>, target: Tensor<2>) -> Tensor<1> {
        match self {
            Loss::Mse => MseLoss::new().forward(prediction, target, Reduction::Mean),
            Loss::L1 => (prediction - target).abs().mean(),
        }
    }
}

impl std::str::FromStr for Loss {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mse" => Ok(Loss::Mse),
            "l1" => Ok(Loss::L1),
            other => Err(format!("unknown loss {other:?}: use mse or l1")),
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 30,
            batch: 64,
            learning_rate: 1e-3,
            optimizer: Optimizer::AdamW,
            patience: 5,
            seed: 42,
            loss: Loss::L1,
        }
    }
}

/// One epoch of training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss (on scaled values).
    pub train_loss: f64,
    /// Validation loss (on scaled values).
    pub val_loss: f64,
    /// Learning rate used.
    pub learning_rate: f64,
}

/// The `loss` of `net` on `data`, in batches, without gradients.
pub fn evaluate(net: &Net, data: &Dataset, loss: Loss, batch: usize, device: &Device) -> f64 {
    let idx: Vec<usize> = (0..data.len()).collect();
    let mut total = 0.0;
    for chunk in idx.chunks(batch.max(1)) {
        let (seq, lags, target) = data.batch(chunk, device);
        let value = loss.of(net.forward(seq, lags), target);
        total += f64::from(value.into_scalar::<f32>()) * chunk.len() as f64;
    }
    total / data.len().max(1) as f64
}

/// Trains a network of shape `net` on `train`, stopping early on `val`; returns the weights of
/// the best validation epoch (the untrained network included), the untrained network (both
/// ready for inference on the plain CPU device) and the log.
pub fn train(
    net: &NetConfig,
    config: &TrainConfig,
    train: &Dataset,
    val: &Dataset,
    mut on_epoch: impl FnMut(&EpochLog),
) -> (Net, Net, Vec<EpochLog>) {
    let device = Device::flex().autodiff();
    device.seed(config.seed);
    let plain = Device::flex();
    let mut model = net.init(&device);
    let mut optim = match config.optimizer {
        Optimizer::AdamW => AdamWConfig::new().init(),
        Optimizer::Sgd { momentum } => SgdConfig::new()
            .with_momentum(Some(
                MomentumConfig::new()
                    .with_momentum(momentum)
                    .with_dampening(0.0),
            ))
            .init(),
    };
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut lr = config.learning_rate;
    // The untrained network is a candidate too: its seasonal head starts as the seasonal
    // blend, and training that only makes validation worse must not be kept.
    let initial = model.valid().to_device(&plain);
    let mut best: Option<(f64, Net)> = (!val.is_empty()).then(|| {
        (
            evaluate(&initial, val, config.loss, 256, &plain),
            initial.clone(),
        )
    });
    let mut since_best = 0;
    let mut log = Vec::new();
    for epoch in 1..=config.epochs.max(1) {
        order.shuffle(&mut rng);
        let mut sum = 0.0;
        for chunk in order.chunks(config.batch.max(1)) {
            let (seq, lags, target) = train.batch(chunk, &device);
            let loss = config.loss.of(model.forward(seq, lags), target);
            sum += f64::from(loss.clone().into_scalar::<f32>()) * chunk.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
        }
        let inference = model.valid().to_device(&plain);
        let val_loss = if val.is_empty() {
            sum / train.len().max(1) as f64
        } else {
            evaluate(&inference, val, config.loss, 256, &plain)
        };
        let entry = EpochLog {
            epoch,
            train_loss: sum / train.len().max(1) as f64,
            val_loss,
            learning_rate: lr,
        };
        on_epoch(&entry);
        log.push(entry);
        if best.as_ref().is_none_or(|(b, _)| val_loss < *b) {
            best = Some((val_loss, inference));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best % 2 == 0 {
                lr *= 0.5;
            }
            if since_best >= config.patience {
                break;
            }
        }
    }
    let (_, best) = best.expect("at least one epoch ran");
    (best, initial, log)
}

/// Mean absolute error of each output over `data`.
pub fn output_errors(net: &Net, data: &Dataset, device: &Device) -> Vec<f64> {
    let idx: Vec<usize> = (0..data.len()).collect();
    let mut sums = vec![0.0; data.outputs];
    for chunk in idx.chunks(256) {
        let (seq, lags, target) = data.batch(chunk, device);
        let err = (net.forward(seq, lags) - target)
            .abs()
            .sum_dim(0)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 outputs");
        for (s, e) in sums.iter_mut().zip(err) {
            *s += f64::from(e);
        }
    }
    sums.iter().map(|s| s / data.len().max(1) as f64).collect()
}
