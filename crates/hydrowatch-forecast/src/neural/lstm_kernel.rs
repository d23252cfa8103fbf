//! A whole-sequence LSTM layer on plain `f32` slices: the forward pass keeps what the backward
//! pass needs, and the backward pass is hand-written backpropagation through time.
//!
//! Why it exists: burn 0.22's `nn::Lstm` is about 4x slower than Keras per training step (see
//! docs/BENCHMARKS.md). Per time step it runs 8 small matmuls and a dozen element-wise ops, each a
//! node of the autodiff graph with its own allocation and backward closure, and libm's `tanh` and
//! `exp`. Here a step is one matmul into a preallocated block plus one fused element-wise loop.
//!
//! Invariants and layout:
//! - gates are ordered i, f, g, o in the `4·hidden` columns; `w_ih` is `[input, 4·hidden]`,
//!   `w_hh` is `[hidden, 4·hidden]`, row-major; the initial hidden and cell states are zero;
//! - public inputs and outputs are batch-major (`[batch, steps, ..]`, like burn's `batch_first`);
//!   internal buffers are time-major (`[steps, rows, ..]`) so one step's block is contiguous;
//! - batch rows are independent through time, so the batch is split into one chunk per core and
//!   each chunk runs the whole sequence on its own thread: no synchronisation per step. Weight
//!   gradients are one large matmul per chunk after the time loop, summed over chunks;
//! - sigmoid and tanh use a rational approximation (the one Eigen, and so TensorFlow, uses),
//!   accurate to a few units in the last place of `f32` and vectorisable.

use std::ops::Range;

/// Sizes of one LSTM layer applied to one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LstmShape {
    /// Sequences in the batch.
    pub batch: usize,
    /// Time steps per sequence.
    pub steps: usize,
    /// Input features per step.
    pub input: usize,
    /// Hidden units.
    pub hidden: usize,
}

/// The weights of one layer (see the module notes for layouts).
#[derive(Debug, Clone, Copy)]
pub struct LstmWeights<'a> {
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
pub struct LstmSaved {
    shape: LstmShape,
    chunks: Vec<ChunkSaved>,
}

/// Gradients of the loss with respect to the inputs and weights of one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmGrads {
    /// `[batch, steps, input]`.
    pub x: Vec<f32>,
    /// `[input, 4·hidden]`.
    pub w_ih: Vec<f32>,
    /// `[hidden, 4·hidden]`.
    pub w_hh: Vec<f32>,
    /// `[4·hidden]`.
    pub bias: Vec<f32>,
}

impl LstmShape {
    fn check(&self, x: &[f32], w: &LstmWeights) {
        let g4 = 4 * self.hidden;
        assert_eq!(
            x.len(),
            self.batch * self.steps * self.input,
            "LSTM input size"
        );
        assert_eq!(w.w_ih.len(), self.input * g4, "LSTM w_ih size");
        assert_eq!(w.w_hh.len(), self.hidden * g4, "LSTM w_hh size");
        assert_eq!(w.bias.len(), g4, "LSTM bias size");
    }

    /// Batch rows per thread: one chunk per core, but not chunks so small that spawning costs
    /// more than it saves.
    fn chunks(&self) -> Vec<Range<usize>> {
        const MIN_ROWS: usize = 8;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let count = cores.min(self.batch / MIN_ROWS).max(1);
        let per = self.batch.div_ceil(count);
        (0..count)
            .map(|c| c * per..((c + 1) * per).min(self.batch))
            .filter(|r| !r.is_empty())
            .collect()
    }
}

/// Runs `work` on each chunk, on its own thread when there is more than one.
fn per_chunk<T: Send>(
    chunks: Vec<Range<usize>>,
    work: impl Fn(Range<usize>) -> T + Sync,
) -> Vec<T> {
    if chunks.len() == 1 {
        return chunks.into_iter().map(&work).collect();
    }
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|rows| scope.spawn(move || work(rows)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("LSTM worker thread panicked"))
            .collect()
    })
}

/// The forward pass: hidden states `[batch, steps, hidden]` of every step, and what the
/// backward pass needs.
pub fn forward(shape: LstmShape, x: &[f32], w: LstmWeights) -> (Vec<f32>, LstmSaved) {
    shape.check(x, &w);
    let chunks = per_chunk(shape.chunks(), |rows| forward_chunk(shape, x, w, rows));
    let LstmShape { steps, hidden, .. } = shape;
    let mut out = vec![0.0; shape.batch * steps * hidden];
    for chunk in &chunks {
        let n = chunk.rows.len();
        for t in 0..steps {
            for r in 0..n {
                let src = &chunk.hidden[(t * n + r) * hidden..][..hidden];
                out[((chunk.rows.start + r) * steps + t) * hidden..][..hidden].copy_from_slice(src);
            }
        }
    }
    (out, LstmSaved { shape, chunks })
}

fn forward_chunk(shape: LstmShape, x: &[f32], w: LstmWeights, rows: Range<usize>) -> ChunkSaved {
    let LstmShape {
        steps,
        input,
        hidden,
        ..
    } = shape;
    let (n, g4) = (rows.len(), 4 * hidden);
    let xt = gather_time_major(x, &rows, steps, input);
    // Input contributions of every step at once: gates = bias + x · w_ih.
    let mut gates: Vec<f32> = w.bias.repeat(steps * n);
    matmul(
        steps * n,
        g4,
        input,
        &mut gates,
        true,
        Mat::rows(&xt, input),
        Mat::rows(w.w_ih, g4),
    );
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
pub fn backward(saved: &LstmSaved, dy: &[f32], x: &[f32], w: LstmWeights) -> LstmGrads {
    let shape = saved.shape;
    shape.check(x, &w);
    let LstmShape {
        batch,
        steps,
        input,
        hidden,
    } = shape;
    assert_eq!(
        dy.len(),
        batch * steps * hidden,
        "LSTM output gradient size"
    );
    let g4 = 4 * hidden;
    let parts = per_chunk((0..saved.chunks.len()).map(|c| c..c + 1).collect(), |c| {
        backward_chunk(shape, &saved.chunks[c.start], dy, x, w)
    });
    let mut grads = LstmGrads {
        x: vec![0.0; batch * steps * input],
        w_ih: vec![0.0; input * g4],
        w_hh: vec![0.0; hidden * g4],
        bias: vec![0.0; g4],
    };
    for (chunk, part) in saved.chunks.iter().zip(parts) {
        add(&mut grads.w_ih, &part.w_ih);
        add(&mut grads.w_hh, &part.w_hh);
        add(&mut grads.bias, &part.bias);
        let n = chunk.rows.len();
        for t in 0..steps {
            for r in 0..n {
                let src = &part.x[(t * n + r) * input..][..input];
                grads.x[((chunk.rows.start + r) * steps + t) * input..][..input]
                    .copy_from_slice(src);
            }
        }
    }
    grads
}

/// The gradients of one chunk; `x` comes back time-major (`[steps, rows, input]`).
fn backward_chunk(
    shape: LstmShape,
    saved: &ChunkSaved,
    dy: &[f32],
    x: &[f32],
    w: LstmWeights,
) -> LstmGrads {
    let LstmShape {
        steps,
        input,
        hidden,
        ..
    } = shape;
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
    let mut grads = LstmGrads {
        x: vec![0.0; steps * n * input],
        w_ih: vec![0.0; input * g4],
        w_hh: vec![0.0; hidden * g4],
        bias: vec![0.0; g4],
    };
    // w_hh: Σ_t h_{t-1}ᵀ · dz_t (h_{-1} = 0), one matmul over all steps and rows.
    if steps > 1 {
        matmul(
            hidden,
            g4,
            (steps - 1) * n,
            &mut grads.w_hh,
            false,
            Mat::transposed(&saved.hidden[..(steps - 1) * step_len], hidden),
            Mat::rows(&dz[n * g4..], g4),
        );
    }
    let xt = gather_time_major(x, &rows, steps, input);
    matmul(
        input,
        g4,
        steps * n,
        &mut grads.w_ih,
        false,
        Mat::transposed(&xt, input),
        Mat::rows(&dz, g4),
    );
    for row in dz.chunks_exact(g4) {
        add(&mut grads.bias, row);
    }
    matmul(
        steps * n,
        input,
        g4,
        &mut grads.x,
        false,
        Mat::rows(&dz, g4),
        Mat::transposed(w.w_ih, g4),
    );
    grads
}

/// `x[rows, steps, input]` (batch-major) to `[steps, rows, input]`.
fn gather_time_major(x: &[f32], rows: &Range<usize>, steps: usize, input: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * steps * input);
    for t in 0..steps {
        for b in rows.clone() {
            out.extend_from_slice(&x[(b * steps + t) * input..][..input]);
        }
    }
    out
}

fn add(acc: &mut [f32], x: &[f32]) {
    for (a, v) in acc.iter_mut().zip(x) {
        *a += v;
    }
}

/// A read-only matrix view: element `(r, c)` is `data[r·row_stride + c·col_stride]`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with `cols` columns.
    fn rows(data: &'a [f32], cols: usize) -> Self {
        Mat {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    fn transposed(data: &'a [f32], cols: usize) -> Self {
        Mat {
            data,
            row_stride: 1,
            col_stride: cols,
        }
    }
    fn assert_fits(&self, rows: usize, cols: usize) {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * self.row_stride + (cols - 1) * self.col_stride;
            assert!(last < self.data.len(), "matrix view out of bounds");
        }
    }
}

/// `dst[m×n] (row-major) = (accumulate ? dst : 0) + lhs[m×k] · rhs[k×n]`, with the `gemm`
/// crate (the one burn's flex backend uses).
fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], accumulate: bool, lhs: Mat, rhs: Mat) {
    assert!(dst.len() >= m * n, "matmul destination too small");
    lhs.assert_fits(m, k);
    rhs.assert_fits(k, n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: every element gemm reads or writes lies inside the slices (checked above), the
    // strides are the ones checked, and `dst` does not alias `lhs` or `rhs` (it is `&mut`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// In-place `tanh`: Eigen's rational approximation (13/6), clamped where `f32` saturates.
fn tanh(xs: &mut [f32]) {
    for x in xs {
        *x = fast_tanh(*x);
    }
}

/// In-place logistic sigmoid, `(1 + tanh(x/2)) / 2`.
fn sigmoid(xs: &mut [f32]) {
    for x in xs {
        *x = 0.5 + 0.5 * fast_tanh(0.5 * *x);
    }
}

#[inline(always)]
#[allow(clippy::excessive_precision)] // Eigen's constants, kept as published
fn fast_tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_671_5e-11;
    const A11: f32 = 2.000_187_9e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525_2e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = ((((((A13 * x2 + A11) * x2 + A9) * x2 + A7) * x2 + A5) * x2 + A3) * x2 + A1) * x;
    let q = ((B6 * x2 + B4) * x2 + B2) * x2 + B0;
    p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_tanh_matches_libm() {
        let mut worst = 0.0f32;
        for i in -20_000..=20_000 {
            let x = i as f32 * 1e-3;
            worst = worst.max((fast_tanh(x) - x.tanh()).abs());
        }
        assert!(worst < 2e-6, "worst error {worst}");
        assert_eq!(fast_tanh(f32::INFINITY), fast_tanh(100.0));
        assert!((fast_tanh(100.0) - 1.0).abs() < 1e-6);
    }

    /// A plain scalar LSTM, written from the textbook equations, to check the kernel against.
    #[allow(clippy::needless_range_loop)] // index form mirrors the equations
    fn reference(shape: LstmShape, x: &[f32], w: LstmWeights) -> Vec<f32> {
        let LstmShape {
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
        shape: LstmShape,
        x: Vec<f32>,
        w_ih: Vec<f32>,
        w_hh: Vec<f32>,
        bias: Vec<f32>,
    }

    impl Case {
        fn new(batch: usize, steps: usize, input: usize, hidden: usize) -> Case {
            let g4 = 4 * hidden;
            Case {
                shape: LstmShape {
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
        for idx in 0..grads.bias.len() {
            check(3, idx, grads.bias[idx]);
        }
    }
}
