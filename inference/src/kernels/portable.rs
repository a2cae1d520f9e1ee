//! The kernels in plain Rust, lane by lane as the AVX2 versions compute them,
//! so that a CPU without AVX2 gets the very same numbers.

use super::{f16_at, hsum8, q5_0_value, Activations, WeightType};

/// Q4_1 weights · Q8_1 activations over `nb` blocks (ggml's `ggml_vec_dot_q4_1_q8_1`).
fn dot_q4_1_q8_1(w: &[u8], x: &[u8], nb: usize) -> f32 {
    let mut acc = [0f32; 8];
    let mut summs = 0f32;
    for i in 0..nb {
        let (wb, xb) = (&w[i * 20..i * 20 + 20], &x[i * 36..i * 36 + 36]);
        let d = f16_at(wb, 0) * f16_at(xb, 0);
        summs = f16_at(wb, 2).mul_add(f16_at(xb, 2), summs);
        let qy = &xb[4..];
        for (lane, a) in acc.iter_mut().enumerate() {
            let mut s = 0i32;
            for k in lane * 4..lane * 4 + 4 {
                let q = if k < 16 {
                    wb[4 + k] & 0x0f
                } else {
                    wb[4 + k - 16] >> 4
                };
                s += q as i32 * (qy[k] as i8) as i32;
            }
            *a = d.mul_add(s as f32, *a);
        }
    }
    hsum8(acc) + summs
}

/// Q8_0 weights · Q8_0 activations (ggml's `ggml_vec_dot_q8_0_q8_0`).
fn dot_q8_0_q8_0(w: &[u8], x: &[u8], nb: usize) -> f32 {
    let mut acc = [0f32; 8];
    for i in 0..nb {
        let (wb, xb) = (&w[i * 34..i * 34 + 34], &x[i * 34..i * 34 + 34]);
        let d = f16_at(wb, 0) * f16_at(xb, 0);
        for (lane, a) in acc.iter_mut().enumerate() {
            let s: i32 = (lane * 4..lane * 4 + 4)
                .map(|k| (wb[2 + k] as i8) as i32 * (xb[2 + k] as i8) as i32)
                .sum();
            *a = d.mul_add(s as f32, *a);
        }
    }
    hsum8(acc)
}

/// Q5_0 weights · Q8_0 activations (ggml's `ggml_vec_dot_q5_0_q8_0`).
fn dot_q5_0_q8_0(w: &[u8], x: &[u8], nb: usize) -> f32 {
    let mut acc = [0f32; 8];
    for i in 0..nb {
        let (wb, xb) = (&w[i * 22..i * 22 + 22], &x[i * 34..i * 34 + 34]);
        let d = f16_at(wb, 0) * f16_at(xb, 0);
        for (lane, a) in acc.iter_mut().enumerate() {
            let s: i32 = (lane * 4..lane * 4 + 4)
                .map(|k| q5_0_value(wb, k) * (xb[2 + k] as i8) as i32)
                .sum();
            *a = d.mul_add(s as f32, *a);
        }
    }
    hsum8(acc)
}

/// # Safety
/// As [`super::matmul_rows`].
pub(super) unsafe fn matmul_rows(
    ty: WeightType,
    w: &[u8],
    row_bytes: usize,
    rows: std::ops::Range<usize>,
    x: &Activations,
    out: *mut f32,
    out_stride: usize,
) {
    let nb = row_bytes / ty.block_bytes();
    for r in rows {
        let wr = &w[r * row_bytes..(r + 1) * row_bytes];
        for t in 0..x.rows {
            let v = match ty {
                WeightType::Q4_1 => dot_q4_1_q8_1(wr, x.row(t), nb),
                WeightType::Q8_0 => dot_q8_0_q8_0(wr, x.row(t), nb),
                WeightType::Q5_0 => dot_q5_0_q8_0(wr, x.row(t), nb),
            };
            // SAFETY: the caller guarantees `out` covers every (t, r) written.
            unsafe { *out.add(t * out_stride + r) = v };
        }
    }
}
