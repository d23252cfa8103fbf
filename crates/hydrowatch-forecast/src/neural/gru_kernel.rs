//! A whole-sequence GRU layer on plain `f32` slices, forward and hand-written backward: the GRU
//! counterpart of [`super::lstm_kernel`], for the same reason (burn's `nn::Gru` builds a graph
//! node per operation per time step).
//!
//! Invariants and layout (the rest is in [`super::kernel`]):
//! - gates r, z, n in the `3·hidden` columns; `w_ih` is `[input, 3·hidden]`, `w_hh` is
//!   `[hidden, 3·hidden]`, `b_ih` and `b_hh` are `[3·hidden]`; the initial state is zero;
//! - the cell is PyTorch's (and burn's), with the reset gate applied after the hidden matmul:
//!   `r = σ(x·W_ir + b_ir + h·W_hr + b_hr)`, `z` likewise, `n = tanh(x·W_in + b_in +
//!   r ⊙ (h·W_hn + b_hn))`, `h' = (1 − z) ⊙ n + z ⊙ h`.

use std::ops::Range;

use super::kernel::{
    Mat, RnnGrads, RnnShape, backward_chunks, chunk_gradients, input_projection, matmul, per_chunk,
    scatter_batch_major, sigmoid, tanh,
};

/// The weights of one layer (see the module notes for layouts).
#[derive(Debug, Clone, Copy)]
pub(super) struct GruWeights<'a> {
    /// `[input, 3·hidden]`.
    pub w_ih: &'a [f32],
    /// `[hidden, 3·hidden]`.
    pub w_hh: &'a [f32],
    /// `[3·hidden]`.
    pub b_ih: &'a [f32],
    /// `[3·hidden]`.
    pub b_hh: &'a [f32],
}

#[derive(Debug, Clone)]
struct ChunkSaved {
    rows: Range<usize>,
    /// Activated gates r, z, n, `[steps, rows, 3·hidden]`.
    gates: Vec<f32>,
    /// `h·W_hn + b_hn` of each step, `[steps, rows, hidden]`.
    hn: Vec<f32>,
    /// Hidden states, `[steps, rows, hidden]`.
    hidden: Vec<f32>,
}

/// What the forward pass keeps for the backward pass.
#[derive(Debug, Clone)]
pub(super) struct GruSaved {
    shape: RnnShape,
    chunks: Vec<ChunkSaved>,
}

fn check(shape: &RnnShape, x: &[f32], w: &GruWeights) {
    shape.check(x, 3, w.w_ih, w.w_hh);
    assert_eq!(w.b_ih.len(), 3 * shape.hidden, "GRU b_ih size");
    assert_eq!(w.b_hh.len(), 3 * shape.hidden, "GRU b_hh size");
}

/// The forward pass: hidden states `[batch, steps, hidden]` of every step, and what the
/// backward pass needs.
pub(super) fn forward(shape: RnnShape, x: &[f32], w: GruWeights) -> (Vec<f32>, GruSaved) {
    check(&shape, x, &w);
    let chunks = per_chunk(shape.chunks(), |rows| forward_chunk(shape, x, w, rows));
    let mut out = vec![0.0; shape.batch * shape.steps * shape.hidden];
    for chunk in &chunks {
        scatter_batch_major(
            &mut out,
            &chunk.rows,
            &chunk.hidden,
            shape.steps,
            shape.hidden,
        );
    }
    (out, GruSaved { shape, chunks })
}

fn forward_chunk(shape: RnnShape, x: &[f32], w: GruWeights, rows: Range<usize>) -> ChunkSaved {
    let RnnShape { steps, hidden, .. } = shape;
    let (n, g3, step_len) = (rows.len(), 3 * hidden, rows.len() * hidden);
    // The input side of every step at once; the gates are computed in place.
    let mut gates = input_projection(shape, x, &rows, w.w_ih, w.b_ih);
    let mut hn = vec![0.0; steps * step_len];
    let mut hidden_states = vec![0.0; steps * step_len];
    let mut gh: Vec<f32> = Vec::with_capacity(n * g3);
    for t in 0..steps {
        gh.clear();
        gh.extend(std::iter::repeat_n(w.b_hh, n).flatten());
        if t > 0 {
            let h_prev = &hidden_states[(t - 1) * step_len..][..step_len];
            matmul(
                n,
                g3,
                hidden,
                &mut gh,
                true,
                Mat::rows(h_prev, hidden),
                Mat::rows(w.w_hh, g3),
            );
        }
        let (done, current) = hidden_states.split_at_mut(t * step_len);
        for r in 0..n {
            let row = &mut gates[(t * n + r) * g3..][..g3];
            let ghr = &gh[r * g3..][..g3];
            for (g, h) in row[..2 * hidden].iter_mut().zip(&ghr[..2 * hidden]) {
                *g += h;
            }
            sigmoid(&mut row[..2 * hidden]);
            let hn_row = &mut hn[t * step_len + r * hidden..][..hidden];
            hn_row.copy_from_slice(&ghr[2 * hidden..]);
            let (rz, cand) = row.split_at_mut(2 * hidden);
            for j in 0..hidden {
                cand[j] += rz[j] * hn_row[j];
            }
            tanh(cand);
            let h = &mut current[r * hidden..][..hidden];
            let z = &rz[hidden..];
            if t == 0 {
                for j in 0..hidden {
                    h[j] = (1.0 - z[j]) * cand[j];
                }
            } else {
                let h_prev = &done[(t - 1) * step_len + r * hidden..][..hidden];
                for j in 0..hidden {
                    h[j] = (1.0 - z[j]) * cand[j] + z[j] * h_prev[j];
                }
            }
        }
    }
    ChunkSaved {
        rows,
        gates,
        hn,
        hidden: hidden_states,
    }
}

/// The backward pass: `dy` is the gradient of the loss with respect to every hidden state
/// (`[batch, steps, hidden]`); `x` and `w` must be those given to [`forward`].
pub(super) fn backward(saved: &GruSaved, dy: &[f32], x: &[f32], w: GruWeights) -> RnnGrads {
    let shape = saved.shape;
    check(&shape, x, &w);
    assert_eq!(
        dy.len(),
        shape.batch * shape.steps * shape.hidden,
        "GRU output gradient size"
    );
    let rows = saved.chunks.iter().map(|c| c.rows.clone()).collect();
    backward_chunks(shape, 3, rows, |c| {
        backward_chunk(shape, &saved.chunks[c], dy, x, w)
    })
}

/// The gradients of one chunk; `x` comes back time-major (`[steps, rows, input]`).
fn backward_chunk(
    shape: RnnShape,
    saved: &ChunkSaved,
    dy: &[f32],
    x: &[f32],
    w: GruWeights,
) -> RnnGrads {
    let RnnShape { steps, hidden, .. } = shape;
    let rows = saved.rows.clone();
    let (n, g3, step_len) = (rows.len(), 3 * hidden, rows.len() * hidden);
    // Gradients of the pre-activations on the input side (dgx) and the hidden side (dgh).
    let mut dgx = vec![0.0; steps * n * g3];
    let mut dgh = vec![0.0; steps * n * g3];
    let mut dh_next = vec![0.0; step_len];
    for t in (0..steps).rev() {
        let mut direct = vec![0.0; step_len];
        for r in 0..n {
            let at = t * step_len + r * hidden;
            let gates = &saved.gates[(t * n + r) * g3..][..g3];
            let (rg, rest) = gates.split_at(hidden);
            let (z, cand) = rest.split_at(hidden);
            let hn = &saved.hn[at..][..hidden];
            let dy_row = &dy[((rows.start + r) * steps + t) * hidden..][..hidden];
            let dgx_row = &mut dgx[(t * n + r) * g3..][..g3];
            let dgh_row = &mut dgh[(t * n + r) * g3..][..g3];
            for j in 0..hidden {
                let dh = dy_row[j] + dh_next[r * hidden + j];
                let h_prev = if t > 0 {
                    saved.hidden[at - step_len + j]
                } else {
                    0.0
                };
                let dn = dh * (1.0 - z[j]) * (1.0 - cand[j] * cand[j]);
                let dz = dh * (h_prev - cand[j]) * z[j] * (1.0 - z[j]);
                let dr = dn * hn[j] * rg[j] * (1.0 - rg[j]);
                direct[r * hidden + j] = dh * z[j];
                dgx_row[j] = dr;
                dgx_row[hidden + j] = dz;
                dgx_row[2 * hidden + j] = dn;
                dgh_row[j] = dr;
                dgh_row[hidden + j] = dz;
                dgh_row[2 * hidden + j] = dn * rg[j];
            }
        }
        if t > 0 {
            // dh_{t-1} = dh · z + dgh_t · w_hhᵀ
            dh_next = direct;
            matmul(
                n,
                hidden,
                g3,
                &mut dh_next,
                true,
                Mat::rows(&dgh[t * n * g3..][..n * g3], g3),
                Mat::transposed(w.w_hh, g3),
            );
        }
    }
    chunk_gradients(shape, &rows, x, &saved.hidden, &dgx, Some(&dgh), w.w_ih)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain scalar GRU from the equations of the module notes.
    #[allow(clippy::needless_range_loop)] // index form mirrors the equations
    fn reference(shape: RnnShape, x: &[f32], w: GruWeights) -> Vec<f32> {
        let RnnShape {
            batch,
            steps,
            input,
            hidden,
        } = shape;
        let g3 = 3 * hidden;
        let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
        let mut out = vec![0.0; batch * steps * hidden];
        for b in 0..batch {
            let mut h = vec![0.0f32; hidden];
            for t in 0..steps {
                let mut gx = w.b_ih.to_vec();
                let mut gh = w.b_hh.to_vec();
                for a in 0..g3 {
                    for i in 0..input {
                        gx[a] += x[(b * steps + t) * input + i] * w.w_ih[i * g3 + a];
                    }
                    for j in 0..hidden {
                        gh[a] += h[j] * w.w_hh[j * g3 + a];
                    }
                }
                let prev = h.clone();
                for j in 0..hidden {
                    let r = sig(gx[j] + gh[j]);
                    let z = sig(gx[hidden + j] + gh[hidden + j]);
                    let n = (gx[2 * hidden + j] + r * gh[2 * hidden + j]).tanh();
                    h[j] = (1.0 - z) * n + z * prev[j];
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

    #[test]
    fn forward_and_backward_match_the_equations_and_finite_differences() {
        let shape = RnnShape {
            batch: 17,
            steps: 6,
            input: 3,
            hidden: 4,
        };
        let g3 = 3 * shape.hidden;
        let mut p = [
            values(shape.batch * shape.steps * shape.input, 1),
            values(shape.input * g3, 2),
            values(shape.hidden * g3, 3),
            values(g3, 4),
            values(g3, 5),
        ];
        fn weights(p: &[Vec<f32>; 5]) -> (Vec<f32>, GruWeights<'_>) {
            (
                p[0].clone(),
                GruWeights {
                    w_ih: &p[1],
                    w_hh: &p[2],
                    b_ih: &p[3],
                    b_hh: &p[4],
                },
            )
        }
        let (x, w) = weights(&p);
        let (out, saved) = forward(shape, &x, w);
        for (a, e) in out.iter().zip(&reference(shape, &x, w)) {
            assert!((a - e).abs() < 1e-5, "{a} vs {e}");
        }
        let coeff = values(out.len(), 9);
        let g = backward(&saved, &coeff, &x, w);
        let analytic = [g.x, g.w_ih, g.w_hh, g.b_ih, g.b_hh];
        let loss = |p: &[Vec<f32>; 5]| -> f64 {
            let (x, w) = weights(p);
            reference(shape, &x, w)
                .iter()
                .zip(&coeff)
                .map(|(h, c)| f64::from(h * c))
                .sum()
        };
        let eps = 1e-2f32;
        for which in 0..5 {
            for idx in (0..p[which].len()).step_by(3) {
                let orig = p[which][idx];
                p[which][idx] = orig + eps;
                let up = loss(&p);
                p[which][idx] = orig - eps;
                let down = loss(&p);
                p[which][idx] = orig;
                let numeric = ((up - down) / (2.0 * f64::from(eps))) as f32;
                let a = analytic[which][idx];
                assert!(
                    (numeric - a).abs() < 2e-3 * (1.0 + numeric.abs()),
                    "parameter {which}[{idx}]: numeric {numeric}, analytic {a}"
                );
            }
        }
    }
}
