//! A fused LSTM layer for burn: the whole sequence is one operation of the autodiff graph, whose
//! forward and backward passes are [`super::lstm_kernel`]. It replaces `burn::nn::Lstm` (same
//! equations, gate order i, f, g, o) because that one is ~4x slower than Keras per training step.
//!
//! It is a burn backend extension implemented for the flex backend (inference) and for
//! `Autodiff<Flex>` (training, with the hand-written backward pass). Other backends are not
//! compiled into hydrowatch; calling it on one would panic inside burn's dispatch.

use std::sync::Arc;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor, TensorData};

use super::lstm_kernel::{self, LstmSaved, LstmShape, LstmWeights};

/// The fused LSTM operation on backend primitives.
#[backend_extension(Flex, Autodiff)]
pub trait FusedLstmBackend: Backend {
    /// Hidden states `[batch, steps, hidden]` of an LSTM over `x` `[batch, steps, input]`, with
    /// `w_ih` `[input, 4·hidden]`, `w_hh` `[hidden, 4·hidden]`, `bias` `[4·hidden]`, starting
    /// from zero states.
    fn fused_lstm(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// The `f32` values of a flex tensor in row-major order (copied only if not contiguous).
fn values(t: &FloatTensor<Flex>) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(t.to_contiguous().storage::<f32>().to_vec()),
    }
}

fn flex(values: Vec<f32>, shape: Vec<usize>) -> FloatTensor<Flex> {
    FloatTensor::<Flex>::from_data(TensorData::new(values, shape))
}

fn shape_of(x: &FloatTensor<Flex>, w_hh: &FloatTensor<Flex>) -> LstmShape {
    let (xs, ws) = (x.shape(), w_hh.shape());
    assert!(
        xs.num_dims() == 3 && ws.num_dims() == 2,
        "fused LSTM: x must be [batch, steps, input] and w_hh [hidden, 4·hidden]"
    );
    LstmShape {
        batch: xs[0],
        steps: xs[1],
        input: xs[2],
        hidden: ws[0],
    }
}

fn run_forward(
    x: &FloatTensor<Flex>,
    w_ih: &FloatTensor<Flex>,
    w_hh: &FloatTensor<Flex>,
    bias: &FloatTensor<Flex>,
) -> (FloatTensor<Flex>, LstmSaved) {
    let shape = shape_of(x, w_hh);
    let (wi, wh, b) = (values(w_ih), values(w_hh), values(bias));
    let weights = LstmWeights {
        w_ih: &wi,
        w_hh: &wh,
        bias: &b,
    };
    let (out, saved) = lstm_kernel::forward(shape, &values(x), weights);
    (
        flex(out, vec![shape.batch, shape.steps, shape.hidden]),
        saved,
    )
}

impl FusedLstmBackend for Flex {
    fn fused_lstm(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        run_forward(&x, &w_ih, &w_hh, &bias).0
    }
}

/// What the backward pass needs: the kernel's saved states and the operation's inputs.
#[derive(Debug, Clone)]
struct Saved {
    kernel: LstmSaved,
    x: FloatTensor<Flex>,
    w_ih: FloatTensor<Flex>,
    w_hh: FloatTensor<Flex>,
    bias: FloatTensor<Flex>,
}

#[derive(Debug)]
struct FusedLstmBackward;

impl Backward<Flex, 4> for FusedLstmBackward {
    type State = Arc<Saved>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w_ih, node_w_hh, node_bias] = ops.parents.map(|p| p.map(|n| n.id));
        let dy = grads.consume::<Flex>(&ops.node);
        let s = &ops.state;
        let (wi, wh, b) = (values(&s.w_ih), values(&s.w_hh), values(&s.bias));
        let weights = LstmWeights {
            w_ih: &wi,
            w_hh: &wh,
            bias: &b,
        };
        let g = lstm_kernel::backward(&s.kernel, &values(&dy), &values(&s.x), weights);
        let mut register = |node: Option<NodeId>, grad: Vec<f32>, like: &FloatTensor<Flex>| {
            if let Some(node) = node {
                grads.register::<Flex>(node, flex(grad, like.shape().to_vec()));
            }
        };
        register(node_x, g.x, &s.x);
        register(node_w_ih, g.w_ih, &s.w_ih);
        register(node_w_hh, g.w_hh, &s.w_hh);
        register(node_bias, g.bias, &s.bias);
    }
}

impl<C: CheckpointStrategy> FusedLstmBackend for Autodiff<Flex, C> {
    fn fused_lstm(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), w_ih.node(), w_hh.node(), bias.node()];
        let (x, w_ih, w_hh, bias) = (
            x.into_primitive(),
            w_ih.into_primitive(),
            w_hh.into_primitive(),
            bias.into_primitive(),
        );
        match FusedLstmBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, kernel) = run_forward(&x, &w_ih, &w_hh, &bias);
                let saved = Saved {
                    kernel,
                    x,
                    w_ih,
                    w_hh,
                    bias,
                };
                prep.finish(Arc::new(saved), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(run_forward(&x, &w_ih, &w_hh, &bias).0),
        }
    }
}

/// One LSTM layer over whole sequences, computed by the fused kernel.
#[derive(Module, Debug)]
pub struct FusedLstm {
    /// `[input, 4·hidden]`, gates i, f, g, o.
    w_ih: Param<Tensor<2>>,
    /// `[hidden, 4·hidden]`.
    w_hh: Param<Tensor<2>>,
    /// `[4·hidden]`.
    bias: Param<Tensor<1>>,
}

impl FusedLstm {
    /// A layer with weights uniform in ±1/√hidden (as PyTorch and burn) and the forget gate's
    /// bias at 1 (as Keras), which lets gradients reach far back early in training.
    pub fn new(input: usize, hidden: usize, device: &Device) -> FusedLstm {
        let k = 1.0 / (hidden.max(1) as f64).sqrt();
        let uniform = Distribution::Uniform(-k, k);
        // The forget gate's bias (the second quarter) starts 1 higher.
        let forget: Vec<f32> = (0..4 * hidden)
            .map(|k| f32::from(u8::from((hidden..2 * hidden).contains(&k))))
            .collect();
        let forget = Tensor::<1>::from_data(TensorData::new(forget, [4 * hidden]), device);
        FusedLstm {
            w_ih: Param::from_tensor(Tensor::random([input, 4 * hidden], uniform, device)),
            w_hh: Param::from_tensor(Tensor::random([hidden, 4 * hidden], uniform, device)),
            bias: Param::from_tensor(Tensor::random([4 * hidden], uniform, device) + forget),
        }
    }

    /// Hidden states `[batch, steps, hidden]` for `x` `[batch, steps, input]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        Tensor::from_dispatch(<Dispatch as FusedLstmBackend>::fused_lstm(
            x.into_dispatch(),
            self.w_ih.val().into_dispatch(),
            self.w_hh.val().into_dispatch(),
            self.bias.val().into_dispatch(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::{sigmoid, tanh};

    /// The LSTM written with burn's differentiable tensor ops, as the yardstick.
    fn reference(layer: &FusedLstm, x: Tensor<3>) -> Tensor<3> {
        let [batch, steps, _] = x.dims();
        let hidden = layer.w_hh.dims()[0];
        let device = x.device();
        let (mut h, mut c) = (
            Tensor::<2>::zeros([batch, hidden], &device),
            Tensor::<2>::zeros([batch, hidden], &device),
        );
        let mut outputs = Vec::new();
        for t in 0..steps {
            let xt = x.clone().narrow(1, t, 1).reshape([batch, x.dims()[2]]);
            let z = xt.matmul(layer.w_ih.val())
                + h.matmul(layer.w_hh.val())
                + layer.bias.val().unsqueeze_dim::<2>(0);
            let gate = |k: usize| z.clone().narrow(1, k * hidden, hidden);
            let (i, f, g, o) = (
                sigmoid(gate(0)),
                sigmoid(gate(1)),
                tanh(gate(2)),
                sigmoid(gate(3)),
            );
            c = f * c + i * g;
            h = o * tanh(c.clone());
            outputs.push(h.clone().unsqueeze_dim::<3>(1));
        }
        Tensor::cat(outputs, 1)
    }

    fn assert_close(a: Tensor<3>, b: Tensor<3>) {
        let (a, b) = (
            a.into_data().try_to_vec::<f32>().unwrap(),
            b.into_data().try_to_vec::<f32>().unwrap(),
        );
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
    }

    fn grads_close(a: Option<Vec<f32>>, b: Option<Vec<f32>>, what: &str) {
        let (a, b) = (
            a.unwrap_or_else(|| panic!("no gradient for {what}")),
            b.unwrap(),
        );
        assert_eq!(a.len(), b.len(), "{what}");
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-4 * (1.0 + y.abs()), "{what}: {x} vs {y}");
        }
    }

    #[test]
    fn outputs_and_gradients_match_burns_own_ops() {
        let device = Device::flex().autodiff();
        device.seed(7);
        let layer = FusedLstm::new(3, 5, &device);
        let x =
            Tensor::<3>::random([10, 7, 3], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let coeff = Tensor::<3>::random([10, 7, 5], Distribution::Normal(0.0, 1.0), &device);
        let fused = layer.forward(x.clone());
        let expected = reference(&layer, x.clone());
        assert_close(fused.clone(), expected.clone());

        let grads_of = |out: Tensor<3>| {
            let grads = (out * coeff.clone()).sum().backward();
            let get = |t: Tensor<2>| t.grad(&grads).map(|g| g.into_data().try_to_vec().unwrap());
            (
                x.grad(&grads).map(|g| g.into_data().try_to_vec().unwrap()),
                get(layer.w_ih.val()),
                get(layer.w_hh.val()),
                layer
                    .bias
                    .val()
                    .grad(&grads)
                    .map(|g| g.into_data().try_to_vec().unwrap()),
            )
        };
        let (fx, fi, fh, fb) = grads_of(fused);
        let (ex, ei, eh, eb) = grads_of(expected);
        grads_close(fx, ex, "x");
        grads_close(fi, ei, "w_ih");
        grads_close(fh, eh, "w_hh");
        grads_close(fb, eb, "bias");
    }

    #[test]
    fn inference_without_autodiff_gives_the_same_hidden_states() {
        let device = Device::flex();
        device.seed(3);
        let layer = FusedLstm::new(2, 4, &device);
        let x = Tensor::<3>::random([1, 30, 2], Distribution::Normal(0.0, 1.0), &device);
        assert_close(layer.forward(x.clone()), reference(&layer, x));
    }
}
