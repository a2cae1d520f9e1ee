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
