//! A whole-sequence LSTM layer on plain `f32` slices: the forward pass keeps what the backward
//! pass needs, and the backward pass is hand-written backpropagation through time.
//!
//! Why it exists: burn 0.22's `nn::Lstm` is about 4x slower than Keras per training step (see
//! docs/BENCHMARKS.md). Per time step it runs 8 small matmuls and a dozen element-wise ops, each a
//! node of the autodiff graph with its own allocation and backward closure, and libm's `tanh` and
//! `exp`. Here a step is one matmul into a preallocated block plus one fused element-wise loop.
//!
//! Invariants and layout (the rest is in [`super::kernel`]):
//! - gates are ordered i, f, g, o in the `4·hidden` columns; `w_ih` is `[input, 4·hidden]`,
//!   `w_hh` is `[hidden, 4·hidden]`, row-major; the initial hidden and cell states are zero;
//! - weight gradients are one large matmul per batch chunk after the time loop, summed over
//!   chunks.

use std::ops::Range;

use super::kernel::{
    Mat, RnnGrads, RnnShape, backward_chunks, chunk_gradients, input_projection, matmul, per_chunk,
    scatter_batch_major, sigmoid, tanh,
};

/// The weights of one layer (see the module notes for layouts).
#[derive(Debug, Clone, Copy)]
pub(super) struct LstmWeights<'a> {
    /// `[input, 4·hidden]`.
    pub w_ih: &'a [f32],
    /// `[hidden, 4·hidden]`.
    pub w_hh: &'a [f32],
    /// `[4·hidden]`.
    pub bias: &'a [f32],
}

/// What the forward pass of one batch chunk keeps for the backward pass.
#[derive(Debug, Clone)]
struct ChunkSaved {
    rows: Range<usize>,
    /// Activated gates, `[steps, rows, 4·hidden]`.
    gates: Vec<f32>,
    /// Cell states, `[steps, rows, hidden]`.
    cells: Vec<f32>,
    /// `tanh` of the cell states, `[steps, rows, hidden]`.
    tanh_cells: Vec<f32>,
    /// Hidden states, `[steps, rows, hidden]`.
    hidden: Vec<f32>,
}

/// What the forward pass keeps for the backward pass.
#[derive(Debug, Clone)]
pub(super) struct LstmSaved {
    shape: RnnShape,
    chunks: Vec<ChunkSaved>,
}

/// The forward pass: hidden states `[batch, steps, hidden]` of every step, and what the
/// backward pass needs.
pub(super) fn forward(shape: RnnShape, x: &[f32], w: LstmWeights) -> (Vec<f32>, LstmSaved) {
    shape.check(x, 4, w.w_ih, w.w_hh);
    assert_eq!(w.bias.len(), 4 * shape.hidden, "LSTM bias size");
    let chunks = per_chunk(shape.chunks(), |rows| forward_chunk(shape, x, w, rows));
    let RnnShape { steps, hidden, .. } = shape;
    let mut out = vec![0.0; shape.batch * steps * hidden];
    for chunk in &chunks {
        scatter_batch_major(&mut out, &chunk.rows, &chunk.hidden, steps, hidden);
    }
    (out, LstmSaved { shape, chunks })
}

fn forward_chunk(shape: RnnShape, x: &[f32], w: LstmWeights, rows: Range<usize>) -> ChunkSaved {
    let RnnShape { steps, hidden, .. } = shape;
    let (n, g4) = (rows.len(), 4 * hidden);
    // The input side of every step at once; the gates are computed in place.
    let mut gates = input_projection(shape, x, &rows, w.w_ih, w.bias);
    let mut cells = vec![0.0; steps * n * hidden];
    let mut tanh_cells = vec![0.0; steps * n * hidden];
    let mut hidden_states = vec![0.0; steps * n * hidden];
    let step_len = n * hidden;
    for t in 0..steps {
        let block = &mut gates[t * n * g4..][..n * g4];
        if t > 0 {
            let h_prev = &hidden_states[(t - 1) * step_len..][..step_len];
            matmul(
                n,
                g4,
                hidden,
                block,
                true,
                Mat::rows(h_prev, hidden),
                Mat::rows(w.w_hh, g4),
            );
        }
        for r in 0..n {
            let row = &mut block[r * g4..][..g4];
            sigmoid(&mut row[..2 * hidden]);
            tanh(&mut row[2 * hidden..3 * hidden]);
            sigmoid(&mut row[3 * hidden..]);
            let at = t * step_len + r * hidden;
            let (done, current) = cells.split_at_mut(t * step_len);
            let c = &mut current[r * hidden..][..hidden];
            let (i, rest) = row.split_at(hidden);
            let (f, rest) = rest.split_at(hidden);
            let (g, o) = rest.split_at(hidden);
            if t == 0 {
                for j in 0..hidden {
                    c[j] = i[j] * g[j];
                }
            } else {
                let c_prev = &done[(t - 1) * step_len + r * hidden..][..hidden];
                for j in 0..hidden {
                    c[j] = f[j] * c_prev[j] + i[j] * g[j];
                }
            }
            let tc = &mut tanh_cells[at..][..hidden];
            tc.copy_from_slice(c);
            tanh(tc);
            let h = &mut hidden_states[at..][..hidden];
            for j in 0..hidden {
                h[j] = o[j] * tc[j];
            }
        }
    }
    ChunkSaved {
        rows,
        gates,
        cells,
        tanh_cells,
        hidden: hidden_states,
    }
}

/// The backward pass: `dy` is the gradient of the loss with respect to every hidden state
/// (`[batch, steps, hidden]`); `x` and `w` must be those given to [`forward`].
pub(super) fn backward(saved: &LstmSaved, dy: &[f32], x: &[f32], w: LstmWeights) -> RnnGrads {
    let shape = saved.shape;
    shape.check(x, 4, w.w_ih, w.w_hh);
    assert_eq!(w.bias.len(), 4 * shape.hidden, "LSTM bias size");
    assert_eq!(
        dy.len(),
        shape.batch * shape.steps * shape.hidden,
        "LSTM output gradient size"
    );
    let rows = saved.chunks.iter().map(|c| c.rows.clone()).collect();
    backward_chunks(shape, 4, rows, |c| {
        backward_chunk(shape, &saved.chunks[c], dy, x, w)
    })
}

/// The gradients of one chunk; `x` comes back time-major (`[steps, rows, input]`).
fn backward_chunk(
    shape: RnnShape,
    saved: &ChunkSaved,
    dy: &[f32],
    x: &[f32],
    w: LstmWeights,
) -> RnnGrads {
    let RnnShape { steps, hidden, .. } = shape;
    let rows = saved.rows.clone();
    let (n, g4, step_len) = (rows.len(), 4 * hidden, rows.len() * hidden);
    // dz: gradient of the pre-activation gates, [steps, rows, 4·hidden].
    let mut dz = vec![0.0; steps * n * g4];
    let mut dh_next = vec![0.0; step_len];
    let mut dc_next = vec![0.0; step_len];
    for t in (0..steps).rev() {
        let block = &mut dz[t * n * g4..][..n * g4];
        for r in 0..n {
            let at = t * step_len + r * hidden;
            let gates = &saved.gates[(t * n + r) * g4..][..g4];
            let (i, rest) = gates.split_at(hidden);
            let (f, rest) = rest.split_at(hidden);
            let (g, o) = rest.split_at(hidden);
            let tc = &saved.tanh_cells[at..][..hidden];
            let dy_row = &dy[((rows.start + r) * steps + t) * hidden..][..hidden];
            let dh_row = &dh_next[r * hidden..][..hidden];
            let dc_row = &mut dc_next[r * hidden..][..hidden];
            let out = &mut block[r * g4..][..g4];
            let (dzi, rest) = out.split_at_mut(hidden);
            let (dzf, rest) = rest.split_at_mut(hidden);
            let (dzg, dzo) = rest.split_at_mut(hidden);
            for j in 0..hidden {
                let dh = dy_row[j] + dh_row[j];
                let dc = dc_row[j] + dh * o[j] * (1.0 - tc[j] * tc[j]);
                let c_prev = if t > 0 {
                    saved.cells[at - step_len + j]
                } else {
                    0.0
                };
                dzi[j] = dc * g[j] * i[j] * (1.0 - i[j]);
                dzf[j] = dc * c_prev * f[j] * (1.0 - f[j]);
                dzg[j] = dc * i[j] * (1.0 - g[j] * g[j]);
                dzo[j] = dh * tc[j] * o[j] * (1.0 - o[j]);
                dc_row[j] = dc * f[j];
            }
        }
        if t > 0 {
            // dh_{t-1} = dz_t · w_hhᵀ
            matmul(
                n,
                hidden,
                g4,
                &mut dh_next,
                false,
                Mat::rows(block, g4),
                Mat::transposed(w.w_hh, g4),
            );
        }
    }
    chunk_gradients(shape, &rows, x, &saved.hidden, &dz, None, w.w_ih)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain scalar LSTM, written from the textbook equations, to check the kernel against.
    #[allow(clippy::needless_range_loop)] // index form mirrors the equations
    fn reference(shape: RnnShape, x: &[f32], w: LstmWeights) -> Vec<f32> {
        let RnnShape {
            batch,
            steps,
            input,
            hidden,
        } = shape;
        let g4 = 4 * hidden;
        let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
        let mut out = vec![0.0; batch * steps * hidden];
        for b in 0..batch {
            let (mut h, mut c) = (vec![0.0f32; hidden], vec![0.0f32; hidden]);
            for t in 0..steps {
                let mut z = w.bias.to_vec();
                for (a, za) in z.iter_mut().enumerate() {
                    for i in 0..input {
                        *za += x[(b * steps + t) * input + i] * w.w_ih[i * g4 + a];
                    }
                    for j in 0..hidden {
                        *za += h[j] * w.w_hh[j * g4 + a];
                    }
                }
                for j in 0..hidden {
                    let (i, f) = (sig(z[j]), sig(z[hidden + j]));
                    let (g, o) = (z[2 * hidden + j].tanh(), sig(z[3 * hidden + j]));
                    c[j] = f * c[j] + i * g;
                    h[j] = o * c[j].tanh();
                }
                out[(b * steps + t) * hidden..][..hidden].copy_from_slice(&h);
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).max(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32 - 0.5) * 1.2
            })
            .collect()
    }

    struct Case {
        shape: RnnShape,
        x: Vec<f32>,
        w_ih: Vec<f32>,
        w_hh: Vec<f32>,
        bias: Vec<f32>,
    }

    impl Case {
        fn new(batch: usize, steps: usize, input: usize, hidden: usize) -> Case {
            let g4 = 4 * hidden;
            Case {
                shape: RnnShape {
                    batch,
                    steps,
                    input,
                    hidden,
                },
                x: values(batch * steps * input, 1),
                w_ih: values(input * g4, 2),
                w_hh: values(hidden * g4, 3),
                bias: values(g4, 4),
            }
        }
        fn weights(&self) -> LstmWeights<'_> {
            LstmWeights {
                w_ih: &self.w_ih,
                w_hh: &self.w_hh,
                bias: &self.bias,
            }
        }
        /// The loss `Σ coeff · h` whose gradient with respect to `h` is `coeff`.
        fn loss(&self, coeff: &[f32]) -> f64 {
            let out = reference(self.shape, &self.x, self.weights());
            out.iter().zip(coeff).map(|(h, c)| (h * c) as f64).sum()
        }
    }

    #[test]
    fn forward_matches_the_textbook_equations() {
        // 20 rows: split over threads on a multi-core machine, one chunk on a single core.
        let case = Case::new(20, 9, 3, 5);
        let (out, _) = forward(case.shape, &case.x, case.weights());
        let expected = reference(case.shape, &case.x, case.weights());
        for (a, e) in out.iter().zip(&expected) {
            assert!((a - e).abs() < 1e-5, "{a} vs {e}");
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut case = Case::new(17, 6, 3, 4);
        let coeff = values(case.shape.batch * case.shape.steps * case.shape.hidden, 9);
        let (_, saved) = forward(case.shape, &case.x, case.weights());
        let grads = backward(&saved, &coeff, &case.x, case.weights());
        let eps = 1e-2f32;
        // Central differences of the f64-accumulated loss, for a sample of each parameter.
        let mut check = |which: usize, idx: usize, analytic: f32| {
            fn slot(c: &mut Case, which: usize, idx: usize) -> &mut f32 {
                match which {
                    0 => &mut c.x[idx],
                    1 => &mut c.w_ih[idx],
                    2 => &mut c.w_hh[idx],
                    _ => &mut c.bias[idx],
                }
            }
            let orig = *slot(&mut case, which, idx);
            *slot(&mut case, which, idx) = orig + eps;
            let up = case.loss(&coeff);
            *slot(&mut case, which, idx) = orig - eps;
            let down = case.loss(&coeff);
            *slot(&mut case, which, idx) = orig;
            let numeric = ((up - down) / (2.0 * eps as f64)) as f32;
            assert!(
                (numeric - analytic).abs() < 2e-3 * (1.0 + numeric.abs()),
                "parameter {which}[{idx}]: numeric {numeric}, analytic {analytic}"
            );
        };
        for idx in (0..grads.x.len()).step_by(7) {
            check(0, idx, grads.x[idx]);
        }
        for idx in (0..grads.w_ih.len()).step_by(3) {
            check(1, idx, grads.w_ih[idx]);
        }
        for idx in (0..grads.w_hh.len()).step_by(3) {
            check(2, idx, grads.w_hh[idx]);
        }
        for idx in 0..grads.b_ih.len() {
            check(3, idx, grads.b_ih[idx]);
        }
    }
}
