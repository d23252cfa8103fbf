//! The reference training step for the side-by-side comparison with Keras
//! (`../shared/peers/keras_lstm_step.py`): one recurrent layer, a dense head of 168 outputs, MSE,
//! AdamW(1e-3), random inputs of `[batch, seq, 2]`. Used by `hydrowatch bench lstm-step`, with
//! burn's stock LSTM and GRU and with hydrowatch's fused ones.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::{MseLoss, Reduction};
use burn::nn::{Gru, GruConfig, Linear, LinearConfig, Lstm, LstmConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};

use crate::neural::fused::{FusedGru, FusedLstm};

/// Which recurrent layer a benchmark runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// burn's `nn::Lstm`.
    StockLstm,
    /// hydrowatch's fused LSTM with its own backward pass (the one the forecaster uses).
    FusedLstm,
    /// burn's `nn::Gru`.
    StockGru,
    /// hydrowatch's fused GRU.
    FusedGru,
}

#[derive(Module, Debug)]
struct Reference {
    stock: Option<Lstm>,
    fused: Option<FusedLstm>,
    stock_gru: Option<Gru>,
    fused_gru: Option<FusedGru>,
    head: Linear,
}

impl Reference {
    fn last_hidden(&self, x: Tensor<3>) -> Tensor<2> {
        let [batch, seq, _] = x.dims();
        let out = if let Some(lstm) = &self.stock {
            return lstm.forward(x, None).1.hidden;
        } else if let Some(lstm) = &self.fused {
            lstm.forward(x)
        } else if let Some(gru) = &self.stock_gru {
            gru.forward(x, None)
        } else if let Some(gru) = &self.fused_gru {
            gru.forward(x)
        } else {
            unreachable!("one layer is always set")
        };
        let hidden = out.dims()[2];
        out.narrow(1, seq - 1, 1).reshape([batch, hidden])
    }
}

/// Mean milliseconds of one training step of the reference configuration, after one warm-up
/// step.
pub fn train_step_ms(layer: Layer, batch: usize, seq: usize, hidden: usize, steps: usize) -> f64 {
    let device = Device::flex().autodiff();
    device.seed(1);
    let mut model = Reference {
        stock: (layer == Layer::StockLstm).then(|| LstmConfig::new(2, hidden, true).init(&device)),
        fused: (layer == Layer::FusedLstm).then(|| FusedLstm::new(2, hidden, &device)),
        stock_gru: (layer == Layer::StockGru)
            .then(|| GruConfig::new(2, hidden, true).init(&device)),
        fused_gru: (layer == Layer::FusedGru).then(|| FusedGru::new(2, hidden, &device)),
        head: LinearConfig::new(hidden, 168).init(&device),
    };
    let mut optim = AdamWConfig::new().init();
    let x = Tensor::<3>::random([batch, seq, 2], Distribution::Normal(0.0, 1.0), &device);
    let y = Tensor::<2>::random([batch, 168], Distribution::Normal(0.0, 1.0), &device);
    let mut step = |model: Reference| {
        let loss = MseLoss::new().forward(
            model.head.forward(model.last_hidden(x.clone())),
            y.clone(),
            Reduction::Mean,
        );
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        optim.step(1e-3, model, grads)
    };
    model = step(model);
    let started = Instant::now();
    for _ in 0..steps.max(1) {
        model = step(model);
    }
    started.elapsed().as_secs_f64() * 1e3 / steps.max(1) as f64
}
