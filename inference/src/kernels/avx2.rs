//! The AVX2 + FMA kernels, one weight row against up to four activation rows
//! at a time: the unpacked weights are reused, while each output keeps
//! exactly the per-block order of ggml's single dot product.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::{f16_at, hsum8, WeightType};

/// Up to this many activation rows share one pass over a weight row.
const TOKENS: usize = 4;

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn lanes(v: __m256) -> [f32; 8] {
    let mut a = [0f32; 8];
    _mm256_storeu_ps(a.as_mut_ptr(), v);
    a
}

/// Sums of adjacent byte products, four per 32-bit lane, as floats
/// (`x` unsigned, `y` signed: ggml's `mul_sum_us8_pairs_float`).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn mul_sum_us8(x: __m256i, y: __m256i) -> __m256 {
    let dot = _mm256_maddubs_epi16(x, y);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(dot, _mm256_set1_epi16(1)))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn q4_1<const N: usize>(w: &[u8], xs: [&[u8]; N], nb: usize) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    let mut summs = [0f32; N];
    let low = _mm256_set1_epi8(0x0f);
    for i in 0..nb {
        let wb = &w[i * 20..i * 20 + 20];
        let d0 = f16_at(wb, 0);
        let m = f16_at(wb, 2);
        let packed = _mm_loadu_si128(wb.as_ptr().add(4) as *const __m128i);
        let qx = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low);
        for t in 0..N {
            let xb = &xs[t][i * 36..i * 36 + 36];
            summs[t] = m.mul_add(f16_at(xb, 2), summs[t]);
            let d = _mm256_set1_ps(d0 * f16_at(xb, 0));
            let qy = _mm256_loadu_si256(xb.as_ptr().add(4) as *const __m256i);
            acc[t] = _mm256_fmadd_ps(d, mul_sum_us8(qx, qy), acc[t]);
        }
    }
    let mut out = [0f32; N];
    for t in 0..N {
        out[t] = hsum8(lanes(acc[t])) + summs[t];
    }
    out
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn q8_0<const N: usize>(w: &[u8], xs: [&[u8]; N], nb: usize) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    for i in 0..nb {
        let wb = &w[i * 34..i * 34 + 34];
        let dw = f16_at(wb, 0);
        let qx = _mm256_loadu_si256(wb.as_ptr().add(2) as *const __m256i);
        let ax = _mm256_sign_epi8(qx, qx);
        for t in 0..N {
            let xb = &xs[t][i * 34..i * 34 + 34];
            let d = _mm256_set1_ps(dw * f16_at(xb, 0));
            let qy = _mm256_loadu_si256(xb.as_ptr().add(2) as *const __m256i);
            let sy = _mm256_sign_epi8(qy, qx);
            acc[t] = _mm256_fmadd_ps(d, mul_sum_us8(ax, sy), acc[t]);
        }
    }
    let mut out = [0f32; N];
    for t in 0..N {
        out[t] = hsum8(lanes(acc[t]));
    }
    out
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots<const N: usize>(ty: WeightType, w: &[u8], xs: [&[u8]; N], nb: usize) -> [f32; N] {
    match ty {
        WeightType::Q4_1 => q4_1(w, xs, nb),
        WeightType::Q8_0 => q8_0(w, xs, nb),
    }
}

/// See [`super::matmul_rows`].
///
/// # Safety
/// The CPU must have AVX2 and FMA, and `out` must be valid for every
/// `t * out_stride + r` with `r` in `rows` and `t` below the activation rows.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn matmul_rows(
    ty: WeightType,
    w: &[u8],
    row_bytes: usize,
    rows: std::ops::Range<usize>,
    x: &[u8],
    x_row_bytes: usize,
    out: *mut f32,
    out_stride: usize,
) {
    let nb = row_bytes / ty.block_bytes();
    let tokens = x.len() / x_row_bytes;
    let xrow = |t: usize| &x[t * x_row_bytes..(t + 1) * x_row_bytes];
    for r in rows {
        let wr = &w[r * row_bytes..(r + 1) * row_bytes];
        let mut t = 0;
        while t + TOKENS <= tokens {
            let v = dots::<TOKENS>(ty, wr, [xrow(t), xrow(t + 1), xrow(t + 2), xrow(t + 3)], nb);
            for (k, v) in v.into_iter().enumerate() {
                *out.add((t + k) * out_stride + r) = v;
            }
            t += TOKENS;
        }
        while t < tokens {
            let [v] = dots::<1>(ty, wr, [xrow(t)], nb);
            *out.add(t * out_stride + r) = v;
            t += 1;
        }
    }
}

/// See [`super::dot_f16`]; `n` a multiple of 32 is all vector work.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; `x` and `y` have the same length.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_f16(x: &[u16], y: &[u16]) -> f32 {
    let n = x.len();
    let np = n & !31;
    let load = |p: &[u16], at: usize| {
        _mm256_cvtph_ps(_mm_loadu_si128(p.as_ptr().add(at) as *const __m128i))
    };
    let mut sum = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i < np {
        for (j, s) in sum.iter_mut().enumerate() {
            *s = _mm256_fmadd_ps(load(x, i + j * 8), load(y, i + j * 8), *s);
        }
        i += 32;
    }
    let a = _mm256_add_ps(sum[0], sum[2]);
    let b = _mm256_add_ps(sum[1], sum[3]);
    let r = _mm256_add_ps(a, b);
    let t0 = _mm_add_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps(r, 1));
    let t1 = _mm_hadd_ps(t0, t0);
    let mut total = _mm_cvtss_f32(_mm_hadd_ps(t1, t1)) as f64;
    for k in np..n {
        total += (super::h2f(x[k]) * super::h2f(y[k])) as f64;
    }
    total as f32
}

/// See [`super::mad_f16`].
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; `x` is at least as long as `y`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn mad_f16(y: &mut [u16], x: &[u16], v: f32) {
    let n = y.len();
    let np = n & !31;
    let vv = _mm256_set1_ps(v);
    let mut i = 0;
    while i < np {
        for j in 0..4 {
            let at = i + j * 8;
            let py = y.as_mut_ptr().add(at) as *mut __m128i;
            let ax = _mm256_cvtph_ps(_mm_loadu_si128(x.as_ptr().add(at) as *const __m128i));
            let ay = _mm256_fmadd_ps(ax, vv, _mm256_cvtph_ps(_mm_loadu_si128(py)));
            _mm_storeu_si128(py, _mm256_cvtps_ph(ay, _MM_FROUND_TO_NEAREST_INT));
        }
        i += 32;
    }
    super::mad_f16_scalar(&mut y[np..], &x[np..n], v);
}

/// See [`super::scale_f16`].
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn scale_f16(y: &mut [u16], v: f32) {
    let n = y.len();
    let np = n & !7;
    let vv = _mm256_set1_ps(v);
    let mut i = 0;
    while i < np {
        let py = y.as_mut_ptr().add(i) as *mut __m128i;
        let ay = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(py)), vv);
        _mm_storeu_si128(py, _mm256_cvtps_ph(ay, _MM_FROUND_TO_NEAREST_INT));
        i += 8;
    }
    super::scale_f16_scalar(&mut y[np..], v);
}
