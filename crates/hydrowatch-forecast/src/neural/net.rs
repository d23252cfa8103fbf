//! The network: a sequence encoder (LSTM, GRU, plain RNN or Transformer encoder) over the input
//! window, and a seasonal head. Output hour `h` is
//!
//! ```text
//! y[h] = Σ_k a[k][h] · lag_k[h]  +  dense(summary)[h]
//! ```
//!
//! where the lags of output hour `h` are the same hour of the week 1-5 weeks earlier and the same
//! hour of the day on each of the 7 days before the origin, and `a` starts as a fixed blend of
//! them (`NetConfig::lag_init`): a smoothed seasonal forecast that already follows the recent
//! level. The encoder only learns how the coming days differ (weather, holidays). A dense layer
//! over all lags was tried first: 113k weights that overfit and lost to MSTL+ETS on days 2-7;
//! per-hour lag weights (12 x 168) do not. The network sees scaled values only and knows nothing
//! of units.

use burn::module::{Module, Param};
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig, Rnn, RnnConfig};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::fused::{FusedGru, FusedLstm};

/// The sequence encoder of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Long short-term memory (the default).
    Lstm,
    /// Gated recurrent unit.
    Gru,
    /// Plain (Elman) recurrent network.
    Rnn,
    /// Transformer encoder over the window.
    Transformer,
}

impl ModelKind {
    /// Every kind.
    pub const ALL: [ModelKind; 4] = [
        ModelKind::Lstm,
        ModelKind::Gru,
        ModelKind::Rnn,
        ModelKind::Transformer,
    ];

    /// Its name in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Lstm => "lstm",
            ModelKind::Gru => "gru",
            ModelKind::Rnn => "rnn",
            ModelKind::Transformer => "transformer",
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lstm" => Ok(ModelKind::Lstm),
            "gru" => Ok(ModelKind::Gru),
            "rnn" => Ok(ModelKind::Rnn),
            "transformer" => Ok(ModelKind::Transformer),
            other => Err(format!(
                "unknown model {other:?}: use lstm, gru, rnn or transformer"
            )),
        }
    }
}

/// Shape of one network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    /// The encoder.
    pub kind: ModelKind,
    /// Stacked encoder layers.
    pub layers: usize,
    /// Hidden units (the model width for the Transformer).
    pub units: usize,
    /// Dropout before the dense head (and inside the Transformer).
    pub dropout: f64,
    /// Attention heads (Transformer only; must divide `units`).
    pub heads: usize,
    /// Input features per time step.
    pub features: usize,
    /// Starting weight of each seasonal lag (their count is the number of lags per output).
    pub lag_init: Vec<f64>,
    /// Outputs (hours forecast by this network).
    pub outputs: usize,
}

/// The network; exactly one of the encoders is non-empty.
#[derive(Module, Debug)]
pub struct Net {
    lstm: Vec<FusedLstm>,
    gru: Vec<FusedGru>,
    rnn: Vec<Rnn>,
    proj: Option<Linear>,
    encoder: Option<TransformerEncoder>,
    dropout: Dropout,
    head: Linear,
    /// `[weeks, outputs]` weights of the seasonal lags.
    lag_weight: Param<Tensor<2>>,
}

impl NetConfig {
    /// A freshly initialised network on `device`.
    pub fn init(&self, device: &Device) -> Net {
        let layers = self.layers.max(1);
        let d_in = |i: usize| if i == 0 { self.features } else { self.units };
        let (mut lstm, mut gru, mut rnn, mut proj, mut encoder) =
            (Vec::new(), Vec::new(), Vec::new(), None, None);
        match self.kind {
            ModelKind::Lstm => {
                lstm = (0..layers)
                    .map(|i| FusedLstm::new(d_in(i), self.units, device))
                    .collect()
            }
            ModelKind::Gru => {
                gru = (0..layers)
                    .map(|i| FusedGru::new(d_in(i), self.units, device))
                    .collect()
            }
            ModelKind::Rnn => {
                rnn = (0..layers)
                    .map(|i| RnnConfig::new(d_in(i), self.units, true).init(device))
                    .collect()
            }
            ModelKind::Transformer => {
                proj = Some(LinearConfig::new(self.features, self.units).init(device));
                encoder = Some(
                    TransformerEncoderConfig::new(
                        self.units,
                        2 * self.units,
                        self.heads.max(1),
                        layers,
                    )
                    .with_dropout(self.dropout)
                    .with_norm_first(true)
                    .init(device),
                );
            }
        }
        Net {
            lstm,
            gru,
            rnn,
            proj,
            encoder,
            dropout: DropoutConfig::new(self.dropout).init(),
            // Zero: the untrained network is exactly its seasonal head's starting blend.
            head: LinearConfig::new(self.units, self.outputs)
                .with_initializer(Initializer::Zeros)
                .init(device),
            lag_weight: Param::from_tensor(
                Tensor::<1>::from_data(
                    TensorData::new(
                        self.lag_init
                            .iter()
                            .flat_map(|w| std::iter::repeat_n(*w as f32, self.outputs))
                            .collect::<Vec<f32>>(),
                        [self.lag_init.len() * self.outputs],
                    ),
                    device,
                )
                .reshape([self.lag_init.len(), self.outputs]),
            ),
        }
    }
}

impl Net {
    /// `seq` `[batch, window, features]`, `lags` `[batch, weeks · outputs]` (week 1 first) to
    /// `[batch, outputs]`.
    pub fn forward(&self, seq: Tensor<3>, lags: Tensor<2>) -> Tensor<2> {
        let [batch, steps, _] = seq.dims();
        let last_step = |x: Tensor<3>| {
            let width = x.dims()[2];
            x.narrow(1, steps - 1, 1).reshape([batch, width])
        };
        let summary = if !self.lstm.is_empty() {
            let mut x = seq;
            for layer in &self.lstm {
                x = layer.forward(x);
            }
            last_step(x)
        } else if !self.gru.is_empty() {
            let mut x = seq;
            for layer in &self.gru {
                x = layer.forward(x);
            }
            last_step(x)
        } else if !self.rnn.is_empty() {
            let mut x = seq;
            let mut hidden = None;
            for layer in &self.rnn {
                let (out, state) = layer.forward(x, None);
                x = out;
                hidden = Some(state.hidden);
            }
            hidden.expect("at least one layer")
        } else {
            let (proj, encoder) = (
                self.proj.as_ref().expect("transformer"),
                self.encoder.as_ref().expect("transformer"),
            );
            last_step(encoder.forward(TransformerEncoderInput::new(proj.forward(seq))))
        };
        let [weeks, outputs] = self.lag_weight.dims();
        let seasonal = (lags.reshape([batch, weeks, outputs])
            * self.lag_weight.val().unsqueeze_dim::<3>(0))
        .sum_dim(1)
        .reshape([batch, outputs]);
        seasonal + self.head.forward(self.dropout.forward(summary))
    }
}

impl Net {
    /// This network with each output `i` forecasting `share[i]` of the trained network plus
    /// `1 - share[i]` of `initial` (the untrained network, the seasonal blend): the output is
    /// linear in its dense-head column and seasonal weights, so mixing those mixes the forecasts
    /// exactly. Share 0 forecasts as the seasonal blend, 1 as trained.
    pub fn mix_outputs(self, initial: &Net, share: &[f32]) -> Net {
        let outputs = share.len();
        let device = self.lag_weight.val().device();
        let mask = Tensor::<1>::from_data(TensorData::new(share.to_vec(), [outputs]), &device);
        let mix2 = |trained: Tensor<2>, start: Tensor<2>| {
            let m = mask.clone().unsqueeze_dim::<2>(0);
            trained * m.clone() + start * (m.neg() + 1.0)
        };
        let mix1 = |trained: Tensor<1>, start: Tensor<1>| {
            trained * mask.clone() + start * (mask.clone().neg() + 1.0)
        };
        let mut net = self;
        net.lag_weight = Param::from_tensor(mix2(net.lag_weight.val(), initial.lag_weight.val()));
        net.head.weight =
            Param::from_tensor(mix2(net.head.weight.val(), initial.head.weight.val()));
        if let (Some(b), Some(b0)) = (&net.head.bias, &initial.head.bias) {
            net.head.bias = Some(Param::from_tensor(mix1(b.val(), b0.val())));
        }
        net
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;

    #[test]
    fn mixed_outputs_forecast_the_share_of_trained_and_untrained_exactly() {
        let device = Device::flex();
        let config = NetConfig {
            kind: ModelKind::Lstm,
            layers: 1,
            units: 8,
            dropout: 0.0,
            heads: 1,
            features: 3,
            lag_init: vec![0.7, 0.3],
            outputs: 4,
        };
        let initial = config.init(&device);
        // "Trained": other seasonal weights and a dense head that is no longer zero.
        let mut trained = config.init(&device);
        trained.lag_weight = Param::from_tensor(Tensor::random(
            [2, 4],
            Distribution::Uniform(0.0, 1.0),
            &device,
        ));
        trained.head.weight = Param::from_tensor(Tensor::random(
            [8, 4],
            Distribution::Uniform(-1.0, 1.0),
            &device,
        ));
        let seq = Tensor::<3>::random([5, 6, 3], Distribution::Normal(0.0, 1.0), &device);
        let lags = Tensor::<2>::random([5, 8], Distribution::Uniform(0.0, 1.0), &device);
        let out = |net: &Net| {
            net.forward(seq.clone(), lags.clone())
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let (a, b) = (out(&trained), out(&initial));
        let share = [0.0, 0.5, 1.0, 0.25];
        let mixed = out(&trained.mix_outputs(&initial, &share));
        for (i, m) in mixed.iter().enumerate() {
            let s = share[i % 4];
            let expected = s * a[i] + (1.0 - s) * b[i];
            assert!((m - expected).abs() < 1e-5, "output {i}: {m} vs {expected}");
        }
        assert!(
            a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 0.1),
            "{a:?} {b:?}"
        );
    }
}
