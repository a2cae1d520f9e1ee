//! The kernels in plain Rust, lane by lane as the AVX2 versions compute them,
//! so that a CPU without AVX2 gets the very same numbers. Nothing here calls
//! AVX2 code: the AVX2 kernels may use these, never the other way round.

use half::f16;

use super::{f16_at, h2f, hsum8, q5_0_value, q6k_value, scale_min_k4, Activations, WeightType};

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

fn q8k_parts(xb: &[u8]) -> (f32, &[u8], [i32; 16]) {
    let d = f32::from_le_bytes([xb[0], xb[1], xb[2], xb[3]]);
    let mut bsums = [0i32; 16];
    for (j, s) in bsums.iter_mut().enumerate() {
        *s = i16::from_le_bytes([xb[260 + 2 * j], xb[261 + 2 * j]]) as i32;
    }
    (d, &xb[4..260], bsums)
}

/// Q4_K weights · Q8_K activations (ggml's `ggml_vec_dot_q4_K_q8_K` on AVX2):
/// per block, eight integer lanes (bytes 4m..4m+4 of each 32-value group)
/// for the scales and four float lanes for the mins.
pub(super) fn dot_q4k_q8k(w: &[u8], x: &[u8], nb: usize) -> f32 {
    let mut acc = [0f32; 8];
    let mut acc_m = [0f32; 4];
    for i in 0..nb {
        let (wb, xb) = (&w[i * 144..(i + 1) * 144], &x[i * 292..(i + 1) * 292]);
        let (yd, q8, bsums) = q8k_parts(xb);
        let d = yd * f16_at(wb, 0);
        let dmin = -yd * f16_at(wb, 2);
        let sm: Vec<(i32, i32)> = (0..8).map(|j| scale_min_k4(j, &wb[4..16])).collect();
        let q8s: Vec<i32> = (0..8).map(|k| bsums[2 * k] + bsums[2 * k + 1]).collect();
        for (l, a) in acc_m.iter_mut().enumerate() {
            let prod = sm[2 * l].1 * q8s[2 * l] + sm[2 * l + 1].1 * q8s[2 * l + 1];
            *a = dmin.mul_add(prod as f32, *a);
        }
        let q4 = &wb[16..];
        for (m, a) in acc.iter_mut().enumerate() {
            let mut sumi = 0i32;
            for j in 0..4 {
                for b in 4 * m..4 * m + 4 {
                    let byte = q4[j * 32 + b];
                    let q8l = q8[j * 64 + b] as i8 as i32;
                    let q8h = q8[j * 64 + 32 + b] as i8 as i32;
                    sumi += sm[2 * j].0 * (byte & 15) as i32 * q8l;
                    sumi += sm[2 * j + 1].0 * (byte >> 4) as i32 * q8h;
                }
            }
            *a = d.mul_add(sumi as f32, *a);
        }
    }
    hsum8(acc) + ((acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]))
}

/// Q4_K weights · Q8_K activations as llama.cpp's repacked AVX2 kernels
/// compute them: integer sums of scaled products and of mins, then one float
/// lane per row, fed once per block by the one-token kernel
/// (`ggml_gemv_q4_K_8x8_q8_K`) and once per 64 values by the four-token one
/// (`ggml_gemm_q4_K_8x8_q8_K`, `per_64`). `group_dots` gives the exact
/// integer dot products of a block's eight groups ([`q4k_group_dots`] here;
/// the AVX2 kernels pass their own).
#[inline(always)]
pub(super) fn dot_q4k_q8k_by_row(
    w: &[u8],
    x: &[u8],
    nb: usize,
    per_64: bool,
    group_dots: impl Fn(&[u8], &[u8]) -> [i32; 8],
) -> f32 {
    let (mut acc, mut acc_min) = (0f32, 0f32);
    for i in 0..nb {
        let (wb, xb) = (&w[i * 144..(i + 1) * 144], &x[i * 292..(i + 1) * 292]);
        let (yd, _, bsums) = q8k_parts(xb);
        let (d, dmin) = (f16_at(wb, 0) * yd, f16_at(wb, 2) * yd);
        let dots = group_dots(wb, xb);
        let (mut sums, mut mins) = (0i32, 0i32);
        for (g, dot) in dots.iter().enumerate() {
            let (sc, m) = scale_min_k4(g, &wb[4..16]);
            sums += sc * dot;
            mins += m * (bsums[2 * g] + bsums[2 * g + 1]);
            if per_64 && g % 2 == 1 {
                acc = (sums as f32).mul_add(d, acc);
                acc_min = (mins as f32).mul_add(dmin, acc_min);
                (sums, mins) = (0, 0);
            }
        }
        if !per_64 {
            acc = (sums as f32).mul_add(d, acc);
            acc_min = (mins as f32).mul_add(dmin, acc_min);
        }
    }
    acc - acc_min
}

/// The unscaled dot product of each 32-value group of a Q4_K block with the
/// activations (exact integers, so any order gives the same).
fn q4k_group_dots(wb: &[u8], xb: &[u8]) -> [i32; 8] {
    let mut dots = [0i32; 8];
    for (g, dot) in dots.iter_mut().enumerate() {
        let (j, high) = (g / 2, g % 2 == 1);
        *dot = (0..32)
            .map(|b| {
                let byte = wb[16 + j * 32 + b];
                let q = if high { byte >> 4 } else { byte & 15 };
                q as i32 * xb[4 + g * 32 + b] as i8 as i32
            })
            .sum();
    }
    dots
}

/// Q6_K weights · Q8_K activations (ggml's `ggml_vec_dot_q6_K_q8_K` on AVX2):
/// values taken unsigned, then 32 × Σ scale·bsum subtracted per lane.
pub(super) fn dot_q6k_q8k(w: &[u8], x: &[u8], nb: usize) -> f32 {
    let mut acc = [0f32; 8];
    for i in 0..nb {
        let (wb, xb) = (&w[i * 210..(i + 1) * 210], &x[i * 292..(i + 1) * 292]);
        let (yd, q8, bsums) = q8k_parts(xb);
        let d = yd * f16_at(wb, 208);
        let sc = |g: usize| wb[192 + g] as i8 as i32;
        for (m, a) in acc.iter_mut().enumerate() {
            let mut sumi = 0i32;
            for j in 0..2 {
                for k in 0..4 {
                    let s = sc(2 * (4 * j + k) + usize::from(m >= 4));
                    for b in 4 * m..4 * m + 4 {
                        let e = j * 128 + k * 32 + b;
                        sumi += s * q6k_value(wb, e) * q8[e] as i8 as i32;
                    }
                }
            }
            sumi -= 32 * (bsums[2 * m] * sc(2 * m) + bsums[2 * m + 1] * sc(2 * m + 1));
            *a = d.mul_add(sumi as f32, *a);
        }
    }
    hsum8(acc)
}

/// Q6_K weights · Q8_K activations as llama.cpp's tiled K-quant matrix
/// product computes them for batches of 8 rows or more: each block's exact
/// integer sum, scaled by the weight's d, then fused into the sum with the
/// activation's d.
pub(super) fn dot_q6k_q8k_tiled(w: &[u8], x: &[u8], nb: usize) -> f32 {
    let mut acc = 0f32;
    for i in 0..nb {
        let (wb, xb) = (&w[i * 210..(i + 1) * 210], &x[i * 292..(i + 1) * 292]);
        let (yd, q8, _) = q8k_parts(xb);
        let sum: i32 = (0..256)
            .map(|e| {
                (wb[192 + e / 16] as i8 as i32) * (q6k_value(wb, e) - 32) * (q8[e] as i8 as i32)
            })
            .sum();
        acc = (f16_at(wb, 208) * sum as f32).mul_add(yd, acc);
    }
    acc
}

/// Q6_K · Q8_K, in ggml's lanes or (`tiled`) as its tiled product.
fn dot_q6k(w: &[u8], x: &[u8], nb: usize, tiled: bool) -> f32 {
    if tiled {
        dot_q6k_q8k_tiled(w, x, nb)
    } else {
        dot_q6k_q8k(w, x, nb)
    }
}

/// See [`super::Kernels::matmul_rows`], which checked the sizes.
///
/// # Safety
/// `out` is valid for writes at every `t * out_stride + r` (`r` in `rows`,
/// `t < x.rows`), and no one else accesses those values meanwhile.
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
    // llama.cpp's repacked Q4_K takes activation rows four at a time, the
    // rest one by one, and its tiled K-quant product takes batches of 8 rows
    // or more: each row's place in its sequence says which (`BatchPlace`).
    for r in rows {
        let wr = &w[r * row_bytes..(r + 1) * row_bytes];
        for t in 0..x.rows {
            let v = match ty {
                WeightType::Q4_1 => dot_q4_1_q8_1(wr, x.row(t), nb),
                WeightType::Q8_0 => dot_q8_0_q8_0(wr, x.row(t), nb),
                WeightType::Q5_0 => dot_q5_0_q8_0(wr, x.row(t), nb),
                WeightType::Q4K => dot_q4k_q8k(wr, x.row(t), nb),
                WeightType::Q4KRows8 => {
                    dot_q4k_q8k_by_row(wr, x.row(t), nb, x.place(t).in_fours, q4k_group_dots)
                }
                WeightType::Q6K => dot_q6k(wr, x.row(t), nb, x.place(t).tiled),
            };
            // SAFETY: `(t, r)` is one of the outputs the caller gave us.
            unsafe { *out.add(t * out_stride + r) = v };
        }
    }
}

/// The dot product of two f16 vectors (given widened to f32, which is exact)
/// as ggml's `ggml_vec_dot_f16` computes it on AVX2 (four 8-lane accumulators
/// over 32-value steps).
pub(super) fn dot_f16(x: &[f32], y: &[f32]) -> f32 {
    assert_eq!(x.len(), y.len());
    let n = x.len();
    let np = n & !31;
    let mut sum = [[0f32; 8]; 4];
    let mut i = 0;
    while i < np {
        for (j, s) in sum.iter_mut().enumerate() {
            for (l, lane) in s.iter_mut().enumerate() {
                let k = i + j * 8 + l;
                *lane = x[k].mul_add(y[k], *lane);
            }
        }
        i += 32;
    }
    let mut r = [0f32; 8];
    for (l, r) in r.iter_mut().enumerate() {
        *r = (sum[0][l] + sum[2][l]) + (sum[1][l] + sum[3][l]);
    }
    let t0 = [r[0] + r[4], r[1] + r[5], r[2] + r[6], r[3] + r[7]];
    let mut total = ((t0[0] + t0[1]) + (t0[2] + t0[3])) as f64;
    for k in np..n {
        total += (x[k] * y[k]) as f64;
    }
    total as f32
}

/// `y = f16(y + x * v)` element-wise (ggml's `ggml_vec_mad_f16`; `x` holds
/// f16 values widened to f32).
pub(super) fn mad_f16(y: &mut [u16], x: &[f32], v: f32) {
    assert!(x.len() >= y.len());
    for (y, x) in y.iter_mut().zip(x) {
        *y = f16::from_f32(x.mul_add(v, h2f(*y))).to_bits();
    }
}

/// `out = x` widened from f16 to f32 (exact).
pub(super) fn widen_f16(x: &[u16], out: &mut [f32]) {
    for (o, x) in out.iter_mut().zip(x) {
        *o = h2f(*x);
    }
}

/// The portable f16 operations, for the attention loop.
#[derive(Clone, Copy)]
pub(super) struct F16;

impl super::attend::F16Ops for F16 {
    fn widen(self, x: &[u16], out: &mut [f32]) {
        widen_f16(x, out)
    }
    fn dot(self, x: &[f32], y: &[f32]) -> f32 {
        dot_f16(x, y)
    }
    fn mad(self, y: &mut [u16], x: &[f32], v: f32) {
        mad_f16(y, x, v)
    }
    fn scale(self, y: &mut [u16], v: f32) {
        scale_f16(y, v)
    }
}

/// `y = f16(y * v)` element-wise (ggml's `ggml_vec_scale_f16`).
pub(super) fn scale_f16(y: &mut [u16], v: f32) {
    for y in y.iter_mut() {
        *y = f16::from_f32(h2f(*y) * v).to_bits();
    }
}
