//! The network: a sequence encoder (LSTM, GRU, plain RNN or Transformer encoder) over the input
//! window, and a seasonal head. Output hour `h` is
//!
//! ```text
//! y[h] = Σ_k a[k][h] · lag_k[h]  +  dense(summary)[h]
//! ```
//!
//! where `lag_k[h]` is the value of the same hour `k` weeks earlier and `a` starts as the plain
//! average of the weeks: a smoothed seasonal-naive forecast. The encoder only learns how the
//! coming days differ from the recent weeks (level, weather, holidays). A dense layer over all
//! lags was tried first: 113k weights that overfit and lost to MSTL+ETS on days 2-7; per-hour
//! lag weights (672) do not. The network sees scaled values only and knows nothing of units.

use burn::module::{Module, Param};
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Dropout, DropoutConfig, Gru, GruConfig, Linear, LinearConfig, Rnn, RnnConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::fused_lstm::FusedLstm;

/// The sequence encoder of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Weeks of seasonal lags per output hour.
    pub lag_weeks: usize,
    /// Outputs (hours forecast by this network).
    pub outputs: usize,
}

/// The network; exactly one of the encoders is non-empty.
#[derive(Module, Debug)]
pub struct Net {
    lstm: Vec<FusedLstm>,
    gru: Vec<Gru>,
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
                    .map(|i| GruConfig::new(d_in(i), self.units, true).init(device))
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
            head: LinearConfig::new(self.units, self.outputs).init(device),
            lag_weight: Param::from_tensor(Tensor::full(
                [self.lag_weeks, self.outputs],
                1.0 / self.lag_weeks.max(1) as f64,
                device,
            )),
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
                x = layer.forward(x, None);
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
