//! The reference training step for the side-by-side comparison with Keras
//! (`../shared/peers/keras_lstm_step.py`): one LSTM layer, a dense head of 168 outputs, MSE,
//! AdamW(1e-3), random inputs of `[batch, seq, 2]`. Used by `hydrowatch bench lstm-step`.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::{MseLoss, Reduction};
use burn::nn::{Linear, LinearConfig, Lstm, LstmConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};

#[derive(Module, Debug)]
struct Reference {
    lstm: Lstm,
    head: Linear,
}

/// Mean milliseconds of one training step of the reference configuration with burn's stock
/// `nn::Lstm`, after one warm-up step.
pub fn lstm_train_step_ms(batch: usize, seq: usize, hidden: usize, steps: usize) -> f64 {
    let device = Device::flex().autodiff();
    device.seed(1);
    let mut model = Reference {
        lstm: LstmConfig::new(2, hidden, true).init(&device),
        head: LinearConfig::new(hidden, 168).init(&device),
    };
    let mut optim = AdamWConfig::new().init();
    let x = Tensor::<3>::random([batch, seq, 2], Distribution::Normal(0.0, 1.0), &device);
    let y = Tensor::<2>::random([batch, 168], Distribution::Normal(0.0, 1.0), &device);
    let mut step = |model: Reference| {
        let (_, state) = model.lstm.forward(x.clone(), None);
        let loss =
            MseLoss::new().forward(model.head.forward(state.hidden), y.clone(), Reduction::Mean);
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
