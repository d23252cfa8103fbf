//! Fused recurrent layers for burn: the whole sequence is one operation of the autodiff graph,
//! whose forward and backward passes are [`super::lstm_kernel`] and [`super::gru_kernel`]. They
//! replace `burn::nn::Lstm` and `nn::Gru` (same equations) because those are ~4x slower than
//! Keras per training step.
//!
//! A burn backend extension implemented for the flex backend (inference) and for
//! `Autodiff<Flex>` (training, with the hand-written backward passes). Other backends are not
//! compiled into hydrowatch; calling it on one would panic inside burn's dispatch. Both cells take
//! the same five tensors (`x`, `w_ih`, `w_hh`, `b_ih`, `b_hh`, PyTorch's layout), so one
//! backward step serves both.

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

use super::gru_kernel::{self, GruSaved, GruWeights};
use super::kernel::RnnShape;
use super::lstm_kernel::{self, LstmSaved, LstmWeights};

/// The fused recurrent operations on backend primitives. Each returns the hidden states
/// `[batch, steps, hidden]` over `x` `[batch, steps, input]`, starting from zero states, with
/// `w_ih` `[input, G·hidden]`, `w_hh` `[hidden, G·hidden]`, `b_ih` and `b_hh` `[G·hidden]`
/// (G = 4 gates for the LSTM, 3 for the GRU).
#[backend_extension(Flex, Autodiff)]
pub trait FusedRnnBackend: Backend {
    /// A layer of `cell` over the whole sequence.
    fn fused_rnn(
        cell: Cell,
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// Which recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// LSTM, gates i, f, g, o.
    Lstm,
    /// GRU, gates r, z, n.
    Gru,
}

/// The five input tensors of an operation.
type Inputs = [FloatTensor<Flex>; 5];

/// What a kernel's forward pass keeps for its backward pass.
#[derive(Debug, Clone)]
enum KernelSaved {
    Lstm(LstmSaved),
    Gru(GruSaved),
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

fn shape_of(x: &FloatTensor<Flex>, w_hh: &FloatTensor<Flex>) -> RnnShape {
    let (xs, ws) = (x.shape(), w_hh.shape());
    assert!(
        xs.num_dims() == 3 && ws.num_dims() == 2,
        "fused RNN: x must be [batch, steps, input] and w_hh [hidden, gates·hidden]"
    );
    RnnShape {
        batch: xs[0],
        steps: xs[1],
        input: xs[2],
        hidden: ws[0],
    }
}

fn run_forward(cell: Cell, t: &Inputs) -> (FloatTensor<Flex>, KernelSaved) {
    let shape = shape_of(&t[0], &t[2]);
    let [x, w_ih, w_hh, b_ih, b_hh] = t.each_ref().map(values);
    let (out, saved) = match cell {
        Cell::Lstm => {
            // The kernel takes one bias: PyTorch's two are summed.
            let bias: Vec<f32> = b_ih.iter().zip(b_hh.iter()).map(|(a, b)| a + b).collect();
            let w = LstmWeights {
                w_ih: &w_ih,
                w_hh: &w_hh,
                bias: &bias,
            };
            let (out, saved) = lstm_kernel::forward(shape, &x, w);
            (out, KernelSaved::Lstm(saved))
        }
        Cell::Gru => {
            let w = GruWeights {
                w_ih: &w_ih,
                w_hh: &w_hh,
                b_ih: &b_ih,
                b_hh: &b_hh,
            };
            let (out, saved) = gru_kernel::forward(shape, &x, w);
            (out, KernelSaved::Gru(saved))
        }
    };
    (
        flex(out, vec![shape.batch, shape.steps, shape.hidden]),
        saved,
    )
}

/// The gradients of the five inputs.
fn run_backward(saved: &KernelSaved, dy: &[f32], t: &Inputs) -> [Vec<f32>; 5] {
    let [x, w_ih, w_hh, b_ih, b_hh] = t.each_ref().map(values);
    let g = match saved {
        KernelSaved::Lstm(s) => {
            let bias: Vec<f32> = b_ih.iter().zip(b_hh.iter()).map(|(a, b)| a + b).collect();
            let w = LstmWeights {
                w_ih: &w_ih,
                w_hh: &w_hh,
                bias: &bias,
            };
            lstm_kernel::backward(s, dy, &x, w)
        }
        KernelSaved::Gru(s) => {
            let w = GruWeights {
                w_ih: &w_ih,
                w_hh: &w_hh,
                b_ih: &b_ih,
                b_hh: &b_hh,
            };
            gru_kernel::backward(s, dy, &x, w)
        }
    };
    [g.x, g.w_ih, g.w_hh, g.b_ih, g.b_hh]
}

/// What the backward step needs: the kernel's saved states and the operation's inputs.
#[derive(Debug, Clone)]
struct Saved {
    kernel: KernelSaved,
    inputs: Inputs,
}

#[derive(Debug)]
struct FusedRnnBackward;

impl Backward<Flex, 5> for FusedRnnBackward {
    type State = Arc<Saved>;

    fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, _: &mut Checkpointer) {
        let nodes: [Option<NodeId>; 5] = ops.parents.map(|p| p.map(|n| n.id));
        let dy = grads.consume::<Flex>(&ops.node);
        let s = &ops.state;
        let g = run_backward(&s.kernel, &values(&dy), &s.inputs);
        for ((node, grad), like) in nodes.into_iter().zip(g).zip(&s.inputs) {
            if let Some(node) = node {
                grads.register::<Flex>(node, flex(grad, like.shape().to_vec()));
            }
        }
    }
}

/// The operation on the autodiff backend: one graph node for the whole sequence.
fn autodiff<C: CheckpointStrategy>(
    cell: Cell,
    t: [FloatTensor<Autodiff<Flex, C>>; 5],
) -> FloatTensor<Autodiff<Flex, C>> {
    let nodes = t.each_ref().map(|t| t.node());
    let inputs: Inputs = t.map(|t| t.into_primitive());
    match FusedRnnBackward
        .prepare::<C>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (out, kernel) = run_forward(cell, &inputs);
            prep.finish(Arc::new(Saved { kernel, inputs }), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(run_forward(cell, &inputs).0),
    }
}

impl FusedRnnBackend for Flex {
    fn fused_rnn(
        cell: Cell,
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        run_forward(cell, &[x, w_ih, w_hh, b_ih, b_hh]).0
    }
}

impl<C: CheckpointStrategy> FusedRnnBackend for Autodiff<Flex, C> {
    fn fused_rnn(
        cell: Cell,
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        autodiff::<C>(cell, [x, w_ih, w_hh, b_ih, b_hh])
    }
}

/// The weights of one fused layer.
#[derive(Module, Debug)]
struct Weights {
    /// `[input, G·hidden]`.
    w_ih: Param<Tensor<2>>,
    /// `[hidden, G·hidden]`.
    w_hh: Param<Tensor<2>>,
    /// `[G·hidden]`.
    b_ih: Param<Tensor<1>>,
    /// `[G·hidden]`.
    b_hh: Param<Tensor<1>>,
}

impl Weights {
    /// Weights uniform in ±1/√hidden (as PyTorch and burn), plus `b_ih_extra` on `b_ih`.
    fn new(
        input: usize,
        hidden: usize,
        gates: usize,
        b_ih_extra: Vec<f32>,
        device: &Device,
    ) -> Weights {
        let k = 1.0 / (hidden.max(1) as f64).sqrt();
        let uniform = Distribution::Uniform(-k, k);
        let g = gates * hidden;
        let extra = Tensor::<1>::from_data(TensorData::new(b_ih_extra, [g]), device);
        Weights {
            w_ih: Param::from_tensor(Tensor::random([input, g], uniform, device)),
            w_hh: Param::from_tensor(Tensor::random([hidden, g], uniform, device)),
            b_ih: Param::from_tensor(Tensor::random([g], uniform, device) + extra),
            b_hh: Param::from_tensor(Tensor::random([g], uniform, device)),
        }
    }

    /// Hidden states `[batch, steps, hidden]` of `cell` for `x` `[batch, steps, input]`.
    fn forward(&self, cell: Cell, x: Tensor<3>) -> Tensor<3> {
        Tensor::from_dispatch(<Dispatch as FusedRnnBackend>::fused_rnn(
            cell,
            x.into_dispatch(),
            self.w_ih.val().into_dispatch(),
            self.w_hh.val().into_dispatch(),
            self.b_ih.val().into_dispatch(),
            self.b_hh.val().into_dispatch(),
        ))
    }
}

/// One LSTM layer over whole sequences, computed by the fused kernel.
#[derive(Module, Debug)]
pub struct FusedLstm {
    weights: Weights,
}

impl FusedLstm {
    /// A layer with weights uniform in ±1/√hidden (as PyTorch and burn) and the forget gate's
    /// bias 1 higher (as Keras), which lets gradients reach far back early in training.
    pub fn new(input: usize, hidden: usize, device: &Device) -> FusedLstm {
        let forget: Vec<f32> = (0..4 * hidden)
            .map(|k| f32::from(u8::from((hidden..2 * hidden).contains(&k))))
            .collect();
        FusedLstm {
            weights: Weights::new(input, hidden, 4, forget, device),
        }
    }

    /// Hidden states `[batch, steps, hidden]` for `x` `[batch, steps, input]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.weights.forward(Cell::Lstm, x)
    }
}

/// One GRU layer over whole sequences, computed by the fused kernel.
#[derive(Module, Debug)]
pub struct FusedGru {
    weights: Weights,
}

impl FusedGru {
    /// A layer with weights uniform in ±1/√hidden (as PyTorch and burn).
    pub fn new(input: usize, hidden: usize, device: &Device) -> FusedGru {
        FusedGru {
            weights: Weights::new(input, hidden, 3, vec![0.0; 3 * hidden], device),
        }
    }

    /// Hidden states `[batch, steps, hidden]` for `x` `[batch, steps, input]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.weights.forward(Cell::Gru, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::{sigmoid, tanh};

    /// One step of the cell written with burn's differentiable tensor ops, as the yardstick:
    /// `(h, c)` to the next `(h, c)` (`c` unused by the GRU).
    fn reference(cell: Cell, w: &Weights, x: Tensor<3>) -> Tensor<3> {
        let [batch, steps, input] = x.dims();
        let hidden = w.w_hh.dims()[0];
        let device = x.device();
        let (mut h, mut c) = (
            Tensor::<2>::zeros([batch, hidden], &device),
            Tensor::<2>::zeros([batch, hidden], &device),
        );
        let mut outputs = Vec::new();
        for t in 0..steps {
            let xt = x.clone().narrow(1, t, 1).reshape([batch, input]);
            let gx = xt.matmul(w.w_ih.val()) + w.b_ih.val().unsqueeze_dim::<2>(0);
            let gh = h.clone().matmul(w.w_hh.val()) + w.b_hh.val().unsqueeze_dim::<2>(0);
            let part = |g: &Tensor<2>, k: usize| g.clone().narrow(1, k * hidden, hidden);
            match cell {
                Cell::Lstm => {
                    let z = gx + gh;
                    let (i, f, g, o) = (
                        sigmoid(part(&z, 0)),
                        sigmoid(part(&z, 1)),
                        tanh(part(&z, 2)),
                        sigmoid(part(&z, 3)),
                    );
                    c = f * c + i * g;
                    h = o * tanh(c.clone());
                }
                Cell::Gru => {
                    let r = sigmoid(part(&gx, 0) + part(&gh, 0));
                    let z = sigmoid(part(&gx, 1) + part(&gh, 1));
                    let n = tanh(part(&gx, 2) + r * part(&gh, 2));
                    h = (z.clone().neg() + 1.0) * n + z * h;
                }
            }
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

    #[test]
    fn outputs_and_gradients_match_burns_own_ops() {
        for (cell, gates) in [(Cell::Lstm, 4), (Cell::Gru, 3)] {
            let device = Device::flex().autodiff();
            device.seed(7);
            let w = Weights::new(3, 5, gates, vec![0.5; gates * 5], &device);
            let x = Tensor::<3>::random([10, 7, 3], Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
            let coeff = Tensor::<3>::random([10, 7, 5], Distribution::Normal(0.0, 1.0), &device);
            let ours = w.forward(cell, x.clone());
            let theirs = reference(cell, &w, x.clone());
            assert_close(ours.clone(), theirs.clone());

            let grads_of = |out: Tensor<3>| {
                let grads = (out * coeff.clone()).sum().backward();
                let v =
                    |g: Option<Tensor<1>>| g.map(|g| g.into_data().try_to_vec::<f32>().unwrap());
                [
                    v(x.grad(&grads).map(|g| g.flatten(0, 2))),
                    v(w.w_ih.val().grad(&grads).map(|g| g.flatten(0, 1))),
                    v(w.w_hh.val().grad(&grads).map(|g| g.flatten(0, 1))),
                    v(w.b_ih.val().grad(&grads)),
                    v(w.b_hh.val().grad(&grads)),
                ]
            };
            for (k, (a, b)) in grads_of(ours).into_iter().zip(grads_of(theirs)).enumerate() {
                let (a, b) = (
                    a.unwrap_or_else(|| panic!("{cell:?}: no gradient for input {k}")),
                    b.unwrap(),
                );
                assert_eq!(a.len(), b.len());
                for (p, q) in a.iter().zip(&b) {
                    assert!(
                        (p - q).abs() < 1e-4 * (1.0 + q.abs()),
                        "{cell:?} input {k}: {p} vs {q}"
                    );
                }
            }
        }
    }

    #[test]
    fn inference_without_autodiff_gives_the_same_hidden_states() {
        let device = Device::flex();
        device.seed(3);
        let lstm = FusedLstm::new(2, 4, &device);
        let gru = FusedGru::new(2, 4, &device);
        let x = Tensor::<3>::random([1, 30, 2], Distribution::Normal(0.0, 1.0), &device);
        assert_close(
            lstm.forward(x.clone()),
            reference(Cell::Lstm, &lstm.weights, x.clone()),
        );
        assert_close(
            gru.forward(x.clone()),
            reference(Cell::Gru, &gru.weights, x),
        );
    }
}
