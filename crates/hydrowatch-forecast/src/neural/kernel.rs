//! What the fused recurrent layers ([`super::lstm_kernel`], [`super::gru_kernel`]) share: the
//! sizes of a layer applied to a batch, the split of a batch over the cores, layout helpers, a
//! bounds-checked matmul on the `gemm` crate, and fast vectorisable `tanh` and sigmoid.
//!
//! Internal buffers are time-major (`[steps, rows, ..]`) so one step's block is contiguous;
//! public inputs and outputs are batch-major (`[batch, steps, ..]`, like burn's `batch_first`).
//! Batch rows are independent through time, so the batch is split into one chunk per core and
//! each chunk runs the whole sequence on its own thread: no synchronisation per step.

use std::ops::Range;

/// Sizes of one recurrent layer applied to one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RnnShape {
    /// Sequences in the batch.
    pub batch: usize,
    /// Time steps per sequence.
    pub steps: usize,
    /// Input features per step.
    pub input: usize,
    /// Hidden units.
    pub hidden: usize,
}

impl RnnShape {
    /// Panics unless `x` is `[batch, steps, input]` and each weight has its size for a cell
    /// of `gates` gates.
    pub(super) fn check(&self, x: &[f32], gates: usize, w_ih: &[f32], w_hh: &[f32]) {
        let g = gates * self.hidden;
        assert_eq!(x.len(), self.batch * self.steps * self.input, "input size");
        assert_eq!(w_ih.len(), self.input * g, "w_ih size");
        assert_eq!(w_hh.len(), self.hidden * g, "w_hh size");
    }

    /// Batch rows per thread: one chunk per core, but not chunks so small that spawning costs
    /// more than it saves.
    pub(super) fn chunks(&self) -> Vec<Range<usize>> {
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

/// Gradients of the loss with respect to the input and weights of one layer (for a cell with a
/// single bias, `b_ih` and `b_hh` are the same: the gradient of that bias).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RnnGrads {
    /// `[batch, steps, input]`.
    pub x: Vec<f32>,
    /// `[input, gates·hidden]`.
    pub w_ih: Vec<f32>,
    /// `[hidden, gates·hidden]`.
    pub w_hh: Vec<f32>,
    /// `[gates·hidden]`.
    pub b_ih: Vec<f32>,
    /// `[gates·hidden]`.
    pub b_hh: Vec<f32>,
}

/// `bias + x · w_ih` of every step of the batch rows `rows`, time-major
/// (`[steps, rows, gates·hidden]`): the input side of every gate, one matmul for all steps.
pub(super) fn input_projection(
    shape: RnnShape,
    x: &[f32],
    rows: &Range<usize>,
    w_ih: &[f32],
    bias: &[f32],
) -> Vec<f32> {
    let g = bias.len();
    let xt = gather_time_major(x, rows, shape.steps, shape.input);
    let mut z: Vec<f32> = bias.repeat(shape.steps * rows.len());
    matmul(
        shape.steps * rows.len(),
        g,
        shape.input,
        &mut z,
        true,
        Mat::rows(&xt, shape.input),
        Mat::rows(w_ih, g),
    );
    z
}

/// The gradients of one chunk of batch rows `rows`, from the gradients of the gates'
/// pre-activations on the input side (`dz_in`) and on the hidden side (`dz_hh`; `None`: the
/// same), both time-major `[steps, rows, gates·hidden]`, and the chunk's hidden states
/// (`[steps, rows, hidden]`). Each weight gradient is one matmul over all steps and rows; `x`
/// comes back time-major (`[steps, rows, input]`).
pub(super) fn chunk_gradients(
    shape: RnnShape,
    rows: &Range<usize>,
    x: &[f32],
    hidden_states: &[f32],
    dz_in: &[f32],
    dz_hh: Option<&[f32]>,
    w_ih: &[f32],
) -> RnnGrads {
    let RnnShape {
        steps,
        input,
        hidden,
        ..
    } = shape;
    let n = rows.len();
    let g = dz_in.len() / (steps * n).max(1);
    let dz_h = dz_hh.unwrap_or(dz_in);
    let mut grads = RnnGrads {
        x: vec![0.0; steps * n * input],
        w_ih: vec![0.0; input * g],
        w_hh: vec![0.0; hidden * g],
        b_ih: vec![0.0; g],
        b_hh: Vec::new(),
    };
    // w_hh: Σ_t h_{t-1}ᵀ · dz_t (h_{-1} = 0).
    if steps > 1 {
        matmul(
            hidden,
            g,
            (steps - 1) * n,
            &mut grads.w_hh,
            false,
            Mat::transposed(&hidden_states[..(steps - 1) * n * hidden], hidden),
            Mat::rows(&dz_h[n * g..], g),
        );
    }
    let xt = gather_time_major(x, rows, steps, input);
    matmul(
        input,
        g,
        steps * n,
        &mut grads.w_ih,
        false,
        Mat::transposed(&xt, input),
        Mat::rows(dz_in, g),
    );
    for row in dz_in.chunks_exact(g) {
        add(&mut grads.b_ih, row);
    }
    grads.b_hh = match dz_hh {
        Some(dz_hh) => {
            let mut b = vec![0.0; g];
            for row in dz_hh.chunks_exact(g) {
                add(&mut b, row);
            }
            b
        }
        None => grads.b_ih.clone(),
    };
    matmul(
        steps * n,
        input,
        g,
        &mut grads.x,
        false,
        Mat::rows(dz_in, g),
        Mat::transposed(w_ih, g),
    );
    grads
}

/// The backward pass over the chunks of a batch (`rows` of each, and its gradients computed by
/// `work`), each chunk on its own thread, summed into the batch's gradients.
pub(super) fn backward_chunks(
    shape: RnnShape,
    gates: usize,
    rows: Vec<Range<usize>>,
    work: impl Fn(usize) -> RnnGrads + Sync,
) -> RnnGrads {
    let RnnShape {
        batch,
        steps,
        input,
        hidden,
    } = shape;
    let g = gates * hidden;
    let parts = per_chunk((0..rows.len()).map(|c| c..c + 1).collect(), |c| {
        work(c.start)
    });
    let mut grads = RnnGrads {
        x: vec![0.0; batch * steps * input],
        w_ih: vec![0.0; input * g],
        w_hh: vec![0.0; hidden * g],
        b_ih: vec![0.0; g],
        b_hh: vec![0.0; g],
    };
    for (rows, part) in rows.iter().zip(parts) {
        add(&mut grads.w_ih, &part.w_ih);
        add(&mut grads.w_hh, &part.w_hh);
        add(&mut grads.b_ih, &part.b_ih);
        add(&mut grads.b_hh, &part.b_hh);
        scatter_batch_major(&mut grads.x, rows, &part.x, steps, input);
    }
    grads
}

/// Runs `work` on each chunk, on its own thread when there is more than one.
pub(super) fn per_chunk<T: Send>(
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
            .map(|h| h.join().expect("a recurrent kernel worker thread panicked"))
            .collect()
    })
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

/// Writes `time_major` (`[steps, rows.len(), width]`) into the rows `rows` of the batch-major
/// `out` (`[batch, steps, width]`).
pub(super) fn scatter_batch_major(
    out: &mut [f32],
    rows: &Range<usize>,
    time_major: &[f32],
    steps: usize,
    width: usize,
) {
    let n = rows.len();
    for t in 0..steps {
        for r in 0..n {
            let src = &time_major[(t * n + r) * width..][..width];
            out[((rows.start + r) * steps + t) * width..][..width].copy_from_slice(src);
        }
    }
}

fn add(acc: &mut [f32], x: &[f32]) {
    for (a, v) in acc.iter_mut().zip(x) {
        *a += v;
    }
}

/// A read-only matrix view: element `(r, c)` is `data[r·row_stride + c·col_stride]`.
#[derive(Clone, Copy)]
pub(super) struct Mat<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with `cols` columns.
    pub(super) fn rows(data: &'a [f32], cols: usize) -> Self {
        Mat {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub(super) fn transposed(data: &'a [f32], cols: usize) -> Self {
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
pub(super) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: Mat,
    rhs: Mat,
) {
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
pub(super) fn tanh(xs: &mut [f32]) {
    for x in xs {
        *x = fast_tanh(*x);
    }
}

/// In-place logistic sigmoid, `(1 + tanh(x/2)) / 2`.
pub(super) fn sigmoid(xs: &mut [f32]) {
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
}
