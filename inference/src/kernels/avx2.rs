//! The AVX2 + FMA + F16C kernels. A weight row meets up to four activation
//! rows in one pass, so that each unpacked block is used several times, while
//! every output keeps exactly the per-block order of ggml's single dot product.
//!
//! Soundness. Every function here is compiled for AVX2, FMA and F16C, and the
//! only way in from the rest of the crate is through an [`Avx2`] token, which
//! [`Avx2::detect`] alone makes, after asking the CPU: holding one proves that
//! calling them is sound. Inside, the register-only helpers are safe
//! `#[target_feature]` functions; the block kernels read weights and
//! activations through raw pointers, so they are `unsafe fn`s whose `# Safety`
//! sections state the lengths they read (checked with `debug_assert!` at their
//! entry; [`super::Kernels::matmul_rows`] checks the sizes they derive from
//! with `assert!` once per call). No load needs alignment: every one is
//! unaligned (`loadu`, `read_unaligned`).

#![cfg(target_arch = "x86_64")]
// Lanes and tokens are indexed together in the kernels below.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::ops::Range;

use super::attend::{attend_heads_with, F16Ops, HeadGroup};
use super::{hsum8, portable, ActivationType, Activations, WeightType};

/// Proof that this CPU runs AVX2, FMA and F16C code: only [`Avx2::detect`]
/// makes one. It also says whether the CPU has AVX-512 F, VL and VNNI, which
/// the tiled Q8_0/Q5_0/Q4_1 product needs (it holds two weight rows a 512-bit
/// vector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Avx2 {
    vnni: Option<Vnni>,
}

/// Proof that this CPU runs AVX-512 F, VL and VNNI code: only [`Avx2::detect`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Vnni(());

impl Avx2 {
    /// A token if the CPU has AVX2, FMA and F16C; with VNNI where the CPU has
    /// it and `WICK_NO_AVX512` is not set.
    pub(super) fn detect() -> Option<Self> {
        let avx2 = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        let vnni = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
            && std::env::var_os("WICK_NO_AVX512").is_none();
        avx2.then_some(Self {
            vnni: vnni.then_some(Vnni(())),
        })
    }

    /// The same CPU without the VNNI kernels (to compare the two in tests).
    #[cfg(test)]
    pub(super) fn without_vnni(self) -> Self {
        Self { vnni: None }
    }

    /// Whether the AVX-512 kernels (the tiled VNNI product) are used.
    #[cfg(test)]
    pub(super) fn has_vnni(self) -> bool {
        self.vnni.is_some()
    }

    /// See [`super::Kernels::matmul_rows`], which checked the sizes.
    ///
    /// # Safety
    /// `x.ty == ty.activation_type()`, `row_bytes / ty.block_bytes()` equals
    /// the blocks of an activation row, `rows.end * row_bytes <= w.len()`;
    /// `out` is valid for writes at every `t * out_stride + r` (`r` in `rows`,
    /// `t < x.rows`), and no one else accesses those values meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn matmul_rows(
        self,
        ty: WeightType,
        w: &[u8],
        row_bytes: usize,
        rows: Range<usize>,
        x: &Activations,
        out: *mut f32,
        out_stride: usize,
    ) {
        let mut rows = rows;
        // One activation row against Q8_0 (the output matrix, read from
        // memory at each token) streams faster a row at a time.
        let tiled = match ty {
            WeightType::Q5_0 | WeightType::Q4_1 => true,
            WeightType::Q8_0 => x.rows >= 2,
            _ => false,
        };
        if let (Some(vnni), true) = (self.vnni, tiled) {
            let whole = rows.start..rows.start + rows.len() / TILE * TILE;
            rows.start = whole.end;
            // SAFETY: `vnni` proves the CPU features; `whole` is within
            // `rows`, the rest is this function's own contract.
            unsafe { vnni.tiles(ty, w, row_bytes, whole, x, out, out_stride) };
        }
        // SAFETY: `self` proves the CPU features; the rest is this function's
        // own contract, passed on unchanged.
        unsafe { matmul_rows(ty, w, row_bytes, rows, x, out, out_stride) }
    }

    /// ggml's activation quantization of one row (see `super::quantize_row`),
    /// eight values a vector: the same bytes.
    pub(super) fn quantize_row(self, ty: ActivationType, x: &[f32], out: &mut [u8]) {
        // SAFETY: `self` proves the CPU features.
        unsafe {
            match ty {
                ActivationType::Q8K => quantize_row_q8k(x, out),
                _ => quantize_row_q8(ty, x, out),
            }
        }
    }

    /// See [`super::Kernels::attend_heads`].
    pub(super) fn attend_heads(self, g: &HeadGroup<'_>, out: &mut [f32]) {
        // SAFETY: `self` proves the CPU features.
        unsafe { attend_heads(self, g, out) }
    }

    /// Q6_K · Q8_K over `nb` blocks, in ggml's lanes or (`tiled`) as its tiled product.
    #[cfg(test)]
    pub(super) fn dot_q6k(self, w: &[u8], x: &[u8], nb: usize, tiled: bool) -> f32 {
        // SAFETY: `self` proves the CPU features.
        unsafe { dot_q6k(w, x, nb, tiled) }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn lanes(v: __m256) -> [f32; 8] {
    let mut a = [0f32; 8];
    // SAFETY: `a` holds the eight floats written; the store is unaligned.
    unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
    a
}

/// Sums of adjacent byte products, four per 32-bit lane, as floats
/// (`x` unsigned, `y` signed: ggml's `mul_sum_us8_pairs_float`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mul_sum_us8(x: __m256i, y: __m256i) -> __m256 {
    let dot = _mm256_maddubs_epi16(x, y);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(dot, _mm256_set1_epi16(1)))
}

/// The two f16 values in the four bytes `bits` (little-endian), widened.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn two_f16(bits: u32) -> (f32, f32) {
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// The four bytes at `p`, read unaligned.
///
/// # Safety
/// `p` is valid for reading four bytes.
#[inline]
unsafe fn read_u32(p: *const u8) -> u32 {
    // SAFETY: the caller's promise; the read is unaligned.
    unsafe { std::ptr::read_unaligned(p as *const u32) }
}

/// Checks (in debug builds) what the block kernels below require of the
/// activation rows `t0..t0 + n` they read: `nb` blocks a row, of the format
/// `ty`, with the widened scales (and Q8_1's sums) of every block.
#[inline]
fn debug_check_activations(x: &Activations, ty: ActivationType, t0: usize, n: usize, nb: usize) {
    debug_assert_eq!(x.ty, ty);
    debug_assert!(t0 + n <= x.rows);
    debug_assert_eq!(x.row_bytes, nb * ty.block_bytes());
    debug_assert_eq!(x.data.len(), x.rows * x.row_bytes);
    debug_assert_eq!(x.scales.len(), x.rows * nb);
    debug_assert!(ty != ActivationType::Q8_1 || x.sums.len() == x.rows * nb);
}

/// One Q4_1 weight row (`w`) · `N` Q8_1 activation rows from `t0`.
///
/// # Safety
/// `w` holds at least `nb` Q4_1 blocks (`nb * 20` bytes); `x` is Q8_1 with
/// `nb` blocks a row and rows `t0..t0 + N`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1<const N: usize>(w: &[u8], x: &Activations, t0: usize, nb: usize) -> [f32; N] {
    debug_assert!(w.len() >= nb * 20);
    debug_check_activations(x, ActivationType::Q8_1, t0, N, nb);
    let mut acc = [_mm256_setzero_ps(); N];
    let mut summs = [0f32; N];
    let low = _mm256_set1_epi8(0x0f);
    // SAFETY: every offset below stays inside what the contract promises:
    // weight block `i < nb` at `20 * i` (20 bytes), activation row `t0 + t`
    // (`t < N`) at `(t0 + t) * row_bytes`, its block `i` at `36 * i` (36
    // bytes), and the scales and sums at `(t0 + t) * nb + i`.
    unsafe {
        let xq = x.data.as_ptr().add(t0 * x.row_bytes);
        let xd = x.scales.as_ptr().add(t0 * nb);
        let xs = x.sums.as_ptr().add(t0 * nb);
        for i in 0..nb {
            let wb = w.as_ptr().add(i * 20);
            let (d0, m) = two_f16(read_u32(wb));
            let packed = _mm_loadu_si128(wb.add(4) as *const __m128i);
            let qx = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low);
            for t in 0..N {
                let qy = _mm256_loadu_si256(xq.add(t * x.row_bytes + i * 36 + 4) as *const __m256i);
                summs[t] = m.mul_add(*xs.add(t * nb + i), summs[t]);
                let d = _mm256_set1_ps(d0 * *xd.add(t * nb + i));
                acc[t] = _mm256_fmadd_ps(d, mul_sum_us8(qx, qy), acc[t]);
            }
        }
    }
    let mut out = [0f32; N];
    for t in 0..N {
        out[t] = hsum8(lanes(acc[t])) + summs[t];
    }
    out
}

/// Block `i` of a signed 8-bit weight row (values `qx`, scale `dw`) against
/// block `i` of the `N` Q8_0 activation rows from `t0`, into `acc` (ggml's
/// `mul_sum_i8_pairs_float`, then one fused multiply-add per block).
///
/// # Safety
/// `x` is Q8_0 with `nb` blocks a row, `i < nb`, and has rows `t0..t0 + N`.
#[inline]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn signed_block<const N: usize>(
    acc: &mut [__m256; N],
    qx: __m256i,
    dw: f32,
    x: &Activations,
    t0: usize,
    i: usize,
    nb: usize,
) {
    debug_assert!(i < nb);
    debug_check_activations(x, ActivationType::Q8_0, t0, N, nb);
    let ax = _mm256_sign_epi8(qx, qx);
    for (t, acc) in acc.iter_mut().enumerate() {
        let at = (t0 + t) * x.row_bytes + i * 34;
        // SAFETY: block `i` of row `t0 + t` (34 bytes from `at`) and its
        // scale at `(t0 + t) * nb + i` exist, by the contract.
        let (qy, xd) = unsafe {
            (
                _mm256_loadu_si256(x.data.as_ptr().add(at + 2) as *const __m256i),
                *x.scales.as_ptr().add((t0 + t) * nb + i),
            )
        };
        let d = _mm256_set1_ps(dw * xd);
        *acc = _mm256_fmadd_ps(d, mul_sum_us8(ax, _mm256_sign_epi8(qy, qx)), *acc);
    }
}

/// One Q8_0 weight row (`w`) · `N` Q8_0 activation rows from `t0`.
///
/// # Safety
/// `w` holds at least `nb` Q8_0 blocks (`nb * 34` bytes); `x` is Q8_0 with
/// `nb` blocks a row and rows `t0..t0 + N`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0<const N: usize>(w: &[u8], x: &Activations, t0: usize, nb: usize) -> [f32; N] {
    debug_assert!(w.len() >= nb * 34);
    debug_check_activations(x, ActivationType::Q8_0, t0, N, nb);
    let mut acc = [_mm256_setzero_ps(); N];
    for i in 0..nb {
        // SAFETY: weight block `i < nb` is the 34 bytes at `34 * i`; the
        // activation side is this function's own contract.
        unsafe {
            let wb = w.as_ptr().add(i * 34);
            let (dw, _) = two_f16(read_u32(wb));
            let qx = _mm256_loadu_si256(wb.add(2) as *const __m256i);
            signed_block(&mut acc, qx, dw, x, t0, i, nb);
        }
    }
    acc.map(|a| hsum8(lanes(a)))
}

/// One Q5_0 weight row (`w`) · `N` Q8_0 activation rows from `t0`.
///
/// # Safety
/// `w` holds at least `nb` Q5_0 blocks (`nb * 22` bytes); `x` is Q8_0 with
/// `nb` blocks a row and rows `t0..t0 + N`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0<const N: usize>(w: &[u8], x: &Activations, t0: usize, nb: usize) -> [f32; N] {
    debug_assert!(w.len() >= nb * 22);
    debug_check_activations(x, ActivationType::Q8_0, t0, N, nb);
    let mut acc = [_mm256_setzero_ps(); N];
    for i in 0..nb {
        // SAFETY: weight block `i < nb` is the 22 bytes at `22 * i`; the
        // activation side is this function's own contract.
        unsafe {
            let wb = w.as_ptr().add(i * 22);
            let (dw, _) = two_f16(read_u32(wb));
            signed_block(&mut acc, unpack_q5_0(wb), dw, x, t0, i, nb);
        }
    }
    acc.map(|a| hsum8(lanes(a)))
}

/// The Q5_0 block at `wb` taken apart: its 32 nibbles, and 0xff in each
/// byte whose fifth bit is set.
///
/// # Safety
/// `wb` is valid for reading a Q5_0 block (22 bytes: scale at 0, fifth bits
/// at 2, nibbles at 6).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0_parts(wb: *const u8) -> (__m256i, __m256i) {
    // Spreads the 32 fifth bits over 32 bytes (ggml's `bytes_from_bits_32`).
    let shuffle = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bit = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe_u64 as i64);
    // SAFETY: the caller's promise covers the reads at 2 (4 bytes) and 6 (16).
    let (packed, qh) = unsafe {
        (
            _mm_loadu_si128(wb.add(6) as *const __m128i),
            read_u32(wb.add(2)),
        )
    };
    let qx = _mm256_and_si256(
        _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed),
        _mm256_set1_epi8(0x0f),
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(qh as i32), shuffle);
    let set = _mm256_cmpeq_epi8(_mm256_or_si256(bytes, bit), _mm256_set1_epi64x(-1));
    (qx, set)
}

/// The 32 values of the Q5_0 block at `wb`, as signed bytes.
///
/// # Safety
/// As [`q5_0_parts`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_q5_0(wb: *const u8) -> __m256i {
    // SAFETY: the caller's promise.
    let (qx, set) = unsafe { q5_0_parts(wb) };
    // Without the fifth bit a value is its nibble − 16: set the high nibble.
    _mm256_or_si256(qx, _mm256_andnot_si256(set, _mm256_set1_epi8(0xf0u8 as i8)))
}

/// The 32 values of the Q5_0 block at `wb`, + 16 (0..=31), as unsigned bytes.
///
/// # Safety
/// As [`q5_0_parts`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_q5_0_unsigned(wb: *const u8) -> __m256i {
    // SAFETY: the caller's promise.
    let (qx, set) = unsafe { q5_0_parts(wb) };
    _mm256_or_si256(qx, _mm256_and_si256(set, _mm256_set1_epi8(0x10)))
}

/// Weight rows taken together by the tiled product, and activation rows at most.
const TILE: usize = 4;

/// The weight formats of the tiled product, as its functions' `KIND`.
const TILE_Q8_0: u8 = 0;
const TILE_Q5_0: u8 = 1;
const TILE_Q4_1: u8 = 2;

impl Vnni {
    /// Like [`Avx2::matmul_rows`] for Q8_0, Q5_0 and Q4_1 weights, for a number of
    /// rows that is a multiple of [`TILE`]: tiles of four weight rows by up to
    /// four activation rows, as llama.cpp's tiled product (llamafile's
    /// `tinyBLAS_Q0_AVX::gemm4xN`) computes them. Each output still sums its
    /// blocks in ggml's order, one fused multiply-add per block and the same
    /// eight-lane sum at the end; `vpdpbusd` gives exactly the integers of
    /// AVX2's two multiply-adds (no pair of these products overflows 16 bits).
    /// (llama.cpp has no tiled Q4_1 product; ggml's Q4_1 dot product sums in
    /// the same way, so the same tiles compute it too.)
    ///
    /// # Safety
    /// As [`Avx2::matmul_rows`], with `ty` Q8_0, Q5_0 or Q4_1 and `rows.len()` a multiple of [`TILE`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn tiles(
        self,
        ty: WeightType,
        w: &[u8],
        row_bytes: usize,
        rows: Range<usize>,
        x: &Activations,
        out: *mut f32,
        out_stride: usize,
    ) {
        debug_assert_eq!(rows.len() % TILE, 0);
        // SAFETY: `self` proves the CPU features; the rest is the contract.
        unsafe {
            match ty {
                WeightType::Q5_0 => tiles::<TILE_Q5_0>(w, row_bytes, rows, x, out, out_stride),
                WeightType::Q8_0 => tiles::<TILE_Q8_0>(w, row_bytes, rows, x, out, out_stride),
                WeightType::Q4_1 => tiles::<TILE_Q4_1>(w, row_bytes, rows, x, out, out_stride),
                _ => unreachable!("only Q8_0, Q5_0 and Q4_1 are tiled"),
            }
        }
    }
}

/// See [`Vnni::tiles`]; `KIND` says the weights' format (`TILE_…`).
///
/// With more than four activation rows (a prompt), each tile of four weight
/// rows is unpacked once (into [`Unpacked`]) and then met by every
/// activation tile, instead of unpacked again for each four rows. With four
/// or fewer (decoding), the weights are unpacked as they are used, so that
/// the next tile's rows arrive from memory while this one computes.
///
/// # Safety
/// The CPU has AVX2, FMA, F16C and AVX-512 F, VL and VNNI, and the contract of
/// [`Vnni::tiles`] holds.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn tiles<const KIND: u8>(
    w: &[u8],
    row_bytes: usize,
    rows: Range<usize>,
    x: &Activations,
    out: *mut f32,
    out_stride: usize,
) {
    let nb = row_bytes / block_bytes(KIND);
    debug_assert!(rows.end * row_bytes <= w.len());
    let mut unpacked = (x.rows > TILE).then(|| Unpacked::new(nb));
    for r0 in rows.step_by(TILE) {
        let four = FourRows {
            w,
            row_bytes,
            r0,
            nb,
        };
        // SAFETY: rows `r0..r0 + 4` are among the caller's rows, and each
        // tile's activation rows `t0..t0 + N` are below `x.rows`.
        unsafe {
            match &mut unpacked {
                Some(u) => {
                    u.fill::<KIND>(four);
                    let mut t0 = 0;
                    while t0 + TILE <= x.rows {
                        tile_of::<KIND, 4, true>(four, u, x, t0, out, out_stride);
                        t0 += TILE;
                    }
                    match x.rows - t0 {
                        3 => tile_of::<KIND, 3, true>(four, u, x, t0, out, out_stride),
                        2 => tile_of::<KIND, 2, true>(four, u, x, t0, out, out_stride),
                        1 => tile_of::<KIND, 1, true>(four, u, x, t0, out, out_stride),
                        _ => {}
                    }
                }
                None => {
                    let none = &Unpacked::EMPTY;
                    match x.rows {
                        4 => tile_of::<KIND, 4, false>(four, none, x, 0, out, out_stride),
                        3 => tile_of::<KIND, 3, false>(four, none, x, 0, out, out_stride),
                        2 => tile_of::<KIND, 2, false>(four, none, x, 0, out, out_stride),
                        1 => tile_of::<KIND, 1, false>(four, none, x, 0, out, out_stride),
                        _ => {}
                    }
                }
            }
        }
    }
}

/// The bytes of a weight block of the tiled format `KIND`.
const fn block_bytes(kind: u8) -> usize {
    match kind {
        TILE_Q5_0 => 22,
        TILE_Q4_1 => 20,
        _ => 34,
    }
}

/// The four weight rows `r0..r0 + 4` of a tile, as stored (`nb` blocks a row).
#[derive(Clone, Copy)]
struct FourRows<'a> {
    w: &'a [u8],
    row_bytes: usize,
    r0: usize,
    nb: usize,
}

/// One block of a tile's four weight rows: its 32 values as unsigned bytes
/// (Q5_0 + 16, Q8_0 + 128, Q4_1's nibbles) a row, and the four rows'
/// scales and (Q4_1) minimums.
type TileBlock = ([__m256i; TILE], __m128, __m128);

/// Block `i` of `four`, unpacked; the next tile's rows are prefetched
/// meanwhile (rows a tile apart are four short streams the hardware barely
/// follows; a prefetch never faults, so past the end is harmless).
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `i < four.nb` and rows `r0..r0 + 4` of
/// `four.w` (`row_bytes` bytes each, blocks of `KIND`) are inside it.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_block<const KIND: u8>(four: FourRows<'_>, i: usize) -> TileBlock {
    debug_assert!(i < four.nb && (four.r0 + TILE) * four.row_bytes <= four.w.len());
    let zero = _mm256_setzero_si256();
    let (mut values, mut d, mut m) = ([zero; TILE], [0f32; TILE], [0f32; TILE]);
    for k in 0..TILE {
        // SAFETY: block `i` of row `r0 + k` is the block at
        // `(r0 + k) * row_bytes + i * block_bytes`, inside `w` (the promise).
        unsafe {
            let wb = four
                .w
                .as_ptr()
                .add((four.r0 + k) * four.row_bytes + i * block_bytes(KIND));
            _mm_prefetch::<_MM_HINT_T0>(wb.wrapping_add(TILE * four.row_bytes) as *const i8);
            (d[k], m[k]) = two_f16(read_u32(wb));
            values[k] = match KIND {
                TILE_Q5_0 => unpack_q5_0_unsigned(wb),
                TILE_Q4_1 => {
                    let packed = _mm_loadu_si128(wb.add(4) as *const __m128i);
                    _mm256_and_si256(
                        _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed),
                        _mm256_set1_epi8(0x0f),
                    )
                }
                _ => {
                    let q = _mm256_loadu_si256(wb.add(2) as *const __m256i);
                    _mm256_xor_si256(q, _mm256_set1_epi8(0x80u8 as i8))
                }
            };
        }
    }
    // SAFETY: `d` and `m` hold four floats each; the loads are unaligned.
    unsafe { (values, _mm_loadu_ps(d.as_ptr()), _mm_loadu_ps(m.as_ptr())) }
}

/// A tile's four weight rows unpacked, every block (see [`TileBlock`]).
struct Unpacked {
    blocks: Vec<TileBlock>,
}

impl Unpacked {
    /// Stands for no unpacked rows where the tile unpacks as it goes.
    const EMPTY: Unpacked = Unpacked { blocks: Vec::new() };

    fn new(nb: usize) -> Self {
        // SAFETY: all-zero bits are valid vectors (plain integers and floats).
        let zero: TileBlock = unsafe { std::mem::zeroed() };
        Self {
            blocks: vec![zero; nb],
        }
    }

    /// Unpacks `four` (`nb` blocks, as [`Self::new`] was given).
    ///
    /// # Safety
    /// As [`unpack_block`], for every block of `four`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fill<const KIND: u8>(&mut self, four: FourRows<'_>) {
        debug_assert_eq!(self.blocks.len(), four.nb);
        for (i, b) in self.blocks.iter_mut().enumerate() {
            // SAFETY: `i < nb`; the rest is the caller's promise.
            *b = unsafe { unpack_block::<KIND>(four, i) };
        }
    }
}

/// Block `i` of the tile's weights: from `unpacked` when `PRE`, else
/// unpacked from `four` now.
///
/// # Safety
/// As [`unpack_block`]; when `PRE`, `unpacked` holds `four`'s blocks.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn weights<const KIND: u8, const PRE: bool>(
    four: FourRows<'_>,
    unpacked: &Unpacked,
    i: usize,
) -> TileBlock {
    if PRE {
        unpacked.blocks[i]
    } else {
        // SAFETY: the caller's promise.
        unsafe { unpack_block::<KIND>(four, i) }
    }
}

/// [`tile`] or [`tile_q4_1`], by `KIND`.
///
/// # Safety
/// As [`tile`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn tile_of<const KIND: u8, const N: usize, const PRE: bool>(
    four: FourRows<'_>,
    unpacked: &Unpacked,
    x: &Activations,
    t0: usize,
    out: *mut f32,
    out_stride: usize,
) {
    // SAFETY: the caller's promise, passed on.
    unsafe {
        if KIND == TILE_Q4_1 {
            tile_q4_1::<N, PRE>(four, unpacked, x, t0, out, out_stride)
        } else {
            tile::<KIND, N, PRE>(four, unpacked, x, t0, out, out_stride)
        }
    }
}

/// Four Q4_1 weight rows against `N` Q8_1 activation rows from `t0`: what
/// [`q4_1`] computes for each pair, bit for bit (the nibbles are already
/// unsigned, the minimum's products are summed four rows a vector in the
/// same order). Two weight rows share a 512-bit vector (see [`Pairs`]).
///
/// # Safety
/// As [`tile`], with Q4_1 weights and Q8_1 activations.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn tile_q4_1<const N: usize, const PRE: bool>(
    four: FourRows<'_>,
    unpacked: &Unpacked,
    x: &Activations,
    t0: usize,
    out: *mut f32,
    out_stride: usize,
) {
    let (nb, r0) = (four.nb, four.r0);
    debug_check_activations(x, ActivationType::Q8_1, t0, N, nb);
    let zero = _mm512_setzero_si512();
    let mut acc = [[_mm512_setzero_ps(); 2]; N];
    // Lane `k`: row `r0 + k`'s sum of its minimum × the activations' sums.
    let mut summs = [_mm_setzero_ps(); N];
    // SAFETY: weight block `i < nb` as [`weights`] promises; activation block
    // `i` of row `t0 + t` (`t < N`) is the 36 bytes at `(t0 + t) * row_bytes
    // + i * 36` (values from 4), its scale and sum at `(t0 + t) * nb + i`.
    unsafe {
        let xq = x.data.as_ptr().add(t0 * x.row_bytes + 4);
        let xd = x.scales.as_ptr().add(t0 * nb);
        let xs = x.sums.as_ptr().add(t0 * nb);
        for i in 0..nb {
            let (qx, dw, mw) = weights::<TILE_Q4_1, PRE>(four, unpacked, i);
            let w = Pairs::new(qx, dw);
            for t in 0..N {
                let qy = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                    xq.add(t * x.row_bytes + i * 36) as *const __m256i,
                ));
                summs[t] = _mm_fmadd_ps(mw, _mm_set1_ps(*xs.add(t * nb + i)), summs[t]);
                let d = w.times::<N>(*xd.add(t * nb + i));
                for p in 0..2 {
                    let dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(zero, w.values[p], qy));
                    acc[t][p] = _mm512_fmadd_ps(d[p], dot, acc[t][p]);
                }
            }
        }
    }
    for t in 0..N {
        let mut m = [0f32; TILE];
        // SAFETY: `m` holds the four floats written; the store is unaligned.
        unsafe { _mm_storeu_ps(m.as_mut_ptr(), summs[t]) };
        let sums = Pairs::sums(acc[t]);
        for k in 0..TILE {
            // SAFETY: `(t0 + t, r0 + k)` is one of the outputs the caller gave us.
            unsafe { *out.add((t0 + t) * out_stride + r0 + k) = sums[k] + m[k] };
        }
    }
}

/// A block of a tile's four weight rows as two 512-bit vectors, rows 0 and 1
/// in one and rows 2 and 3 in the other (a row's 32 bytes a half), and the
/// four rows' scales (spread over their halves by [`Pairs::times`]). One instruction then
/// does for two rows what AVX2 does for one; every lane computes what it
/// computed on 256 bits, in the same order, so the sums are unchanged.
struct Pairs {
    values: [__m512i; 2],
    /// The four rows' scales.
    scales: __m128,
}

impl Pairs {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
    fn new(values: [__m256i; TILE], scales: __m128) -> Self {
        let pair = |a, b| _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), b);
        Self {
            values: [pair(values[0], values[1]), pair(values[2], values[3])],
            scales,
        }
    }

    /// Each row's scale times `dx` (ggml's `d_w * d_x`), over the eight lanes
    /// of its half. Against one activation row, the four products are made
    /// and then spread (spreading the scales first measured 9 % slower for
    /// Gemma 3's decoding); against more, the scales are spread (the same
    /// permutes for every activation row of the block, free for the compiler
    /// to hoist) and multiplied a row at a time. The products are the same.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
    fn times<const N: usize>(&self, dx: f32) -> [__m512; 2] {
        let spread = |d: __m128| {
            let d = _mm512_castps128_ps512(d);
            [
                _mm512_permutexvar_ps(
                    _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                    d,
                ),
                _mm512_permutexvar_ps(
                    _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2),
                    d,
                ),
            ]
        };
        if N == 1 {
            spread(_mm_mul_ps(self.scales, _mm_set1_ps(dx)))
        } else {
            let [a, b] = spread(self.scales);
            let dx = _mm512_set1_ps(dx);
            [_mm512_mul_ps(a, dx), _mm512_mul_ps(b, dx)]
        }
    }

    /// The four rows' eight-lane sums (as [`hsum8`]) of two accumulators laid out as the values.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
    fn sums(acc: [__m512; 2]) -> [f32; TILE] {
        let half = |v: __m512, upper: bool| {
            let v = _mm512_castps_pd(v);
            _mm256_castpd_ps(if upper {
                _mm512_extractf64x4_pd::<1>(v)
            } else {
                _mm512_castpd512_pd256(v)
            })
        };
        [
            hsum8(lanes(half(acc[0], false))),
            hsum8(lanes(half(acc[0], true))),
            hsum8(lanes(half(acc[1], false))),
            hsum8(lanes(half(acc[1], true))),
        ]
    }
}

/// The four weight rows of `four` against the `N` activation rows from `t0`.
///
/// The weights are taken as unsigned bytes (a Q5_0 value + 16, a Q8_0 value +
/// 128), which `vpdpbusd` multiplies with the signed activations without
/// ggml's sign trick; each lane's sum starts from −offset × the sum of its
/// four activation values, so it ends at exactly ggml's signed integer.
///
/// # Safety
/// As [`tiles`], for the weight rows of `four` (also unpacked in `unpacked`
/// when `PRE`) and the activation rows `t0..t0 + N` (Q8_0, `nb` blocks).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn tile<const KIND: u8, const N: usize, const PRE: bool>(
    four: FourRows<'_>,
    unpacked: &Unpacked,
    x: &Activations,
    t0: usize,
    out: *mut f32,
    out_stride: usize,
) {
    let (q5, nb, r0) = (KIND == TILE_Q5_0, four.nb, four.r0);
    debug_check_activations(x, ActivationType::Q8_0, t0, N, nb);
    let zero = _mm512_setzero_si512();
    let ones = _mm512_set1_epi8(1);
    let mut acc = [[_mm512_setzero_ps(); 2]; N];
    // SAFETY: weight block `i < nb` as [`weights`] promises; activation block
    // `i` of row `t0 + t` (`t < N`) is the 34 bytes at `(t0 + t) * row_bytes
    // + i * 34` (values from 2) and its scale is at `(t0 + t) * nb + i`.
    unsafe {
        let xq = x.data.as_ptr().add(t0 * x.row_bytes + 2);
        let xd = x.scales.as_ptr().add(t0 * nb);
        for i in 0..nb {
            let (wu, dw, _) = weights::<KIND, PRE>(four, unpacked, i);
            let w = Pairs::new(wu, dw);
            for t in 0..N {
                // The activation block in both halves.
                let qy = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                    xq.add(t * x.row_bytes + i * 34) as *const __m256i,
                ));
                let sums = _mm512_dpbusd_epi32(zero, ones, qy);
                let base = if q5 {
                    _mm512_sub_epi32(zero, _mm512_slli_epi32::<4>(sums))
                } else {
                    _mm512_sub_epi32(zero, _mm512_slli_epi32::<7>(sums))
                };
                // The same products as ggml's `d_w * d_x`, eight lanes a row.
                let d = w.times::<N>(*xd.add(t * nb + i));
                for p in 0..2 {
                    let dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(base, w.values[p], qy));
                    acc[t][p] = _mm512_fmadd_ps(d[p], dot, acc[t][p]);
                }
            }
        }
    }
    for t in 0..N {
        let sums = Pairs::sums(acc[t]);
        for k in 0..TILE {
            // SAFETY: `(t0 + t, r0 + k)` is one of the outputs the caller gave us.
            unsafe { *out.add((t0 + t) * out_stride + r0 + k) = sums[k] };
        }
    }
}

/// Row `r` of `w` against the `N` activation rows from `t0`.
///
/// # Safety
/// As [`matmul_rows`], for this one row `r` and the rows `t0..t0 + N` of `x`.
#[inline]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn row<const N: usize>(
    ty: WeightType,
    w: &[u8],
    row_bytes: usize,
    r: usize,
    x: &Activations,
    t0: usize,
    out: *mut f32,
    out_stride: usize,
) {
    let nb = row_bytes / ty.block_bytes();
    let wr = &w[r * row_bytes..(r + 1) * row_bytes];
    // SAFETY: `wr` is a whole row, `nb` blocks of `ty`; `x` has the matching
    // format and block count and the rows `t0..t0 + N` (the contract).
    let v = unsafe {
        match ty {
            WeightType::Q4_1 => q4_1::<N>(wr, x, t0, nb),
            WeightType::Q8_0 => q8_0::<N>(wr, x, t0, nb),
            WeightType::Q5_0 => q5_0::<N>(wr, x, t0, nb),
            WeightType::Q4K | WeightType::Q4KRows8 | WeightType::Q6K => {
                unreachable!("K-quants take their own loop")
            }
        }
    };
    for (t, v) in v.iter().enumerate() {
        // SAFETY: `(t0 + t, r)` is one of the outputs the caller gave us.
        unsafe { *out.add((t0 + t) * out_stride + r) = *v };
    }
}

/// See [`Avx2::matmul_rows`] (which states the contract).
///
/// # Safety
/// The CPU has AVX2, FMA and F16C, and the contract of [`Avx2::matmul_rows`] holds.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn matmul_rows(
    ty: WeightType,
    w: &[u8],
    row_bytes: usize,
    rows: Range<usize>,
    x: &Activations,
    out: *mut f32,
    out_stride: usize,
) {
    let nb = row_bytes / ty.block_bytes();
    debug_assert_eq!(x.ty, ty.activation_type());
    debug_assert_eq!(x.row_bytes, nb * x.ty.block_bytes());
    debug_assert!(rows.end * row_bytes <= w.len());
    if matches!(ty, WeightType::Q4K | WeightType::Q4KRows8 | WeightType::Q6K) {
        // llama.cpp chooses its kernels by batch size (see
        // `portable::matmul_rows`): each row's place in its sequence says which.
        // With more than one group of activation rows (a prompt's), each
        // weight row is taken apart once for all of them; with one (decoding),
        // block by block as it is used, which streams the weights faster
        // (taking the row apart first measured 5 % slower there).
        let once = x.rows > K_ROWS;
        let (mut q4k, mut q6k) = (Vec::new(), Vec::new());
        for r in rows {
            let wr = &w[r * row_bytes..(r + 1) * row_bytes];
            match ty {
                _ if !once => {}
                WeightType::Q4KRows8 => {
                    q4k.clear();
                    for i in 0..nb {
                        q4k.push(unpack_q4k(&wr[i * 144..(i + 1) * 144]));
                    }
                }
                WeightType::Q6K => {
                    q6k.clear();
                    for i in 0..nb {
                        q6k.push(unpack_q6k(&wr[i * 210..(i + 1) * 210]));
                    }
                }
                _ => {}
            }
            let mut t0 = 0;
            while t0 < x.rows {
                let n = (x.rows - t0).min(K_ROWS);
                let v = match ty {
                    // No AVX2 version: the portable one computes ggml's AVX2 lanes.
                    WeightType::Q4K => std::array::from_fn(|k| {
                        if k < n {
                            portable::dot_q4k_q8k(wr, x.row(t0 + k), nb)
                        } else {
                            0.0
                        }
                    }),
                    WeightType::Q4KRows8 if once => q4k_rows(|i| q4k[i], nb, x, t0, n),
                    WeightType::Q4KRows8 => {
                        q4k_rows(|i| unpack_q4k(&wr[i * 144..(i + 1) * 144]), nb, x, t0, n)
                    }
                    _ if once => q6k_rows(|i| q6k[i], nb, x, t0, n),
                    _ => q6k_rows(|i| unpack_q6k(&wr[i * 210..(i + 1) * 210]), nb, x, t0, n),
                };
                for (k, v) in v.iter().enumerate().take(n) {
                    // SAFETY: `(t0 + k, r)` is one of the outputs the caller gave us.
                    unsafe { *out.add((t0 + k) * out_stride + r) = *v };
                }
                t0 += n;
            }
        }
        return;
    }
    // Four activation rows share each unpacked weight block. (Several weight
    // rows per pass were measured slower: decoding is bound by reading weights.)
    const N: usize = 4;
    for r in rows {
        let mut t = 0;
        // SAFETY: `t + N <= x.rows` (and `t < x.rows`) in these loops; the
        // rest is this function's contract.
        unsafe {
            while t + N <= x.rows {
                row::<N>(ty, w, row_bytes, r, x, t, out, out_stride);
                t += N;
            }
            while t < x.rows {
                row::<1>(ty, w, row_bytes, r, x, t, out, out_stride);
                t += 1;
            }
        }
    }
}

/// The 8 f16 values at `p`, widened.
///
/// # Safety
/// `p` is valid for reading 8 values.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load8_f16(p: *const u16) -> __m256 {
    // SAFETY: the caller's promise; the load is unaligned.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p as *const __m128i) })
}

/// The attention loop compiled for AVX2, FMA and F16C, with this module's
/// f16 operations inlined into it.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attend_heads(token: Avx2, g: &HeadGroup<'_>, out: &mut [f32]) {
    attend_heads_with(token, g, out)
}

impl F16Ops for Avx2 {
    #[inline(always)]
    fn widen(self, x: &[u16], out: &mut [f32]) {
        // SAFETY: `self` proves the CPU features.
        unsafe { widen_f16(x, out) }
    }
    #[inline(always)]
    fn dot(self, x: &[f32], y: &[f32]) -> f32 {
        // SAFETY: `self` proves the CPU features.
        unsafe { dot_f16(x, y) }
    }
    #[inline(always)]
    fn mad(self, y: &mut [u16], x: &[f32], v: f32) {
        // SAFETY: `self` proves the CPU features.
        unsafe { mad_f16(y, x, v) }
    }
    #[inline(always)]
    fn scale(self, y: &mut [u16], v: f32) {
        // SAFETY: `self` proves the CPU features.
        unsafe { scale_f16(y, v) }
    }
}

/// See [`F16Ops::dot`]; `n` a multiple of 32 is all vector work.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_f16(x: &[f32], y: &[f32]) -> f32 {
    assert_eq!(x.len(), y.len());
    let n = x.len();
    let np = n & !31;
    let mut sum = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i < np {
        for (j, s) in sum.iter_mut().enumerate() {
            let at = i + j * 8;
            // SAFETY: `at + 8 <= np <= n`, the length of both; unaligned loads.
            let (a, b) = unsafe {
                (
                    _mm256_loadu_ps(x.as_ptr().add(at)),
                    _mm256_loadu_ps(y.as_ptr().add(at)),
                )
            };
            *s = _mm256_fmadd_ps(a, b, *s);
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
        total += (x[k] * y[k]) as f64;
    }
    total as f32
}

/// See [`F16Ops::mad`].
///
/// # Safety
/// The CPU has AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mad_f16(y: &mut [u16], x: &[f32], v: f32) {
    assert!(x.len() >= y.len());
    let n = y.len();
    let np = n & !7;
    let vv = _mm256_set1_ps(v);
    let mut i = 0;
    while i < np {
        // SAFETY: `i + 8 <= np <= n`, within `y` and (longer or equal) `x`;
        // the loads and the store are unaligned.
        unsafe {
            let py = y.as_mut_ptr().add(i) as *mut __m128i;
            let ax = _mm256_loadu_ps(x.as_ptr().add(i));
            let ay = _mm256_fmadd_ps(ax, vv, _mm256_cvtph_ps(_mm_loadu_si128(py)));
            _mm_storeu_si128(py, _mm256_cvtps_ph(ay, _MM_FROUND_TO_NEAREST_INT));
        }
        i += 8;
    }
    portable::mad_f16(&mut y[np..], &x[np..n], v);
}

/// See [`F16Ops::widen`].
///
/// # Safety
/// The CPU has AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
unsafe fn widen_f16(x: &[u16], out: &mut [f32]) {
    let n = x.len().min(out.len());
    let np = n & !7;
    let mut i = 0;
    while i < np {
        // SAFETY: `i + 8 <= np <= n`, within both; unaligned load and store.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(i), load8_f16(x.as_ptr().add(i))) };
        i += 8;
    }
    portable::widen_f16(&x[np..n], &mut out[np..n]);
}

/// See [`F16Ops::scale`].
///
/// # Safety
/// The CPU has AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale_f16(y: &mut [u16], v: f32) {
    let n = y.len();
    let np = n & !7;
    let vv = _mm256_set1_ps(v);
    let mut i = 0;
    while i < np {
        // SAFETY: `i + 8 <= np <= n`; the load and the store are unaligned.
        unsafe {
            let py = y.as_mut_ptr().add(i) as *mut __m128i;
            let ay = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(py)), vv);
            _mm_storeu_si128(py, _mm256_cvtps_ph(ay, _MM_FROUND_TO_NEAREST_INT));
        }
        i += 8;
    }
    portable::scale_f16(&mut y[np..], v);
}

/// `|v|`, lane by lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn abs_ps(v: __m256) -> __m256 {
    _mm256_andnot_ps(_mm256_set1_ps(-0.0), v)
}

/// The largest of the eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hmax(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
}

/// `round_ties_even(v * by)` as `i32`s, lane by lane (the scalar code's
/// rounding exactly: the product rounds the same, then to nearest even).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn round_scaled(v: __m256, by: __m256) -> __m256i {
    _mm256_cvtps_epi32(_mm256_round_ps::<
        { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
    >(_mm256_mul_ps(v, by)))
}

/// Four vectors of `i32`s in -128..=127 as 32 bytes, in order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn pack_i8(q: [__m256i; 4]) -> __m256i {
    // The packs work within 128-bit halves: dwords end up in the order
    // 0 2 4 6 1 3 5 7, which the permutation undoes.
    let a = _mm256_packs_epi32(q[0], q[1]);
    let b = _mm256_packs_epi32(q[2], q[3]);
    let bytes = _mm256_packs_epi16(a, b);
    _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// See [`Avx2::quantize_row`], for Q8_0 and Q8_1 (`super::quantize_row`).
///
/// # Safety
/// The CPU has AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_row_q8(ty: ActivationType, x: &[f32], out: &mut [u8]) {
    let bb = ty.block_bytes();
    assert!(x.len().is_multiple_of(32) && out.len() == x.len() / 32 * bb);
    for (block, o) in x.chunks_exact(32).zip(out.chunks_exact_mut(bb)) {
        // SAFETY: `block` holds 32 floats; unaligned loads.
        let v: [__m256; 4] =
            std::array::from_fn(|j| unsafe { _mm256_loadu_ps(block.as_ptr().add(8 * j)) });
        let m = _mm256_max_ps(
            _mm256_max_ps(abs_ps(v[0]), abs_ps(v[1])),
            _mm256_max_ps(abs_ps(v[2]), abs_ps(v[3])),
        );
        let max = hmax(m);
        let d = max / 127.0;
        let id = _mm256_set1_ps(if max != 0.0 { 127.0 / max } else { 0.0 });
        let q: [__m256i; 4] = std::array::from_fn(|j| round_scaled(v[j], id));
        o[0..2].copy_from_slice(&super::f16_bytes(d));
        // SAFETY: the last 32 bytes of the block; an unaligned store.
        unsafe { _mm256_storeu_si256(o.as_mut_ptr().add(bb - 32) as *mut __m256i, pack_i8(q)) };
        if ty == ActivationType::Q8_1 {
            let sum = hsum_i32(_mm256_add_epi32(
                _mm256_add_epi32(q[0], q[1]),
                _mm256_add_epi32(q[2], q[3]),
            ));
            o[2..4].copy_from_slice(&super::f16_bytes(d * sum as f32));
        }
    }
}

/// See [`Avx2::quantize_row`], for Q8_K (`super::quantize_row_q8k`).
///
/// # Safety
/// The CPU has AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_row_q8k(x: &[f32], out: &mut [u8]) {
    assert!(x.len().is_multiple_of(256) && out.len() == x.len() / 256 * 292);
    for (block, o) in x.chunks_exact(256).zip(out.chunks_exact_mut(292)) {
        // SAFETY: `block` holds 256 floats; unaligned loads.
        let v: [__m256; 32] =
            std::array::from_fn(|j| unsafe { _mm256_loadu_ps(block.as_ptr().add(8 * j)) });
        let amax = hmax(
            v.iter()
                .fold(_mm256_setzero_ps(), |m, v| _mm256_max_ps(m, abs_ps(*v))),
        );
        if amax == 0.0 {
            o.fill(0);
            continue;
        }
        // The first value of that magnitude, its sign kept.
        let max = *block
            .iter()
            .find(|v| v.abs() == amax)
            .expect("amax is some |value|");
        let iscale = -127.0 / max;
        let by = _mm256_set1_ps(iscale);
        let top = _mm256_set1_epi32(127);
        for j in 0..8 {
            let q: [__m256i; 4] =
                std::array::from_fn(|k| _mm256_min_epi32(round_scaled(v[4 * j + k], by), top));
            // SAFETY: bytes 4 + 32j .. 36 + 32j of the 292-byte block; unaligned.
            unsafe {
                _mm256_storeu_si256(o.as_mut_ptr().add(4 + 32 * j) as *mut __m256i, pack_i8(q))
            };
            for h in 0..2 {
                let sum = hsum_i32(_mm256_add_epi32(q[2 * h], q[2 * h + 1]));
                let at = 260 + 2 * (2 * j + h);
                o[at..at + 2].copy_from_slice(&(sum as i16).to_le_bytes());
            }
        }
        o[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

/// The exact sum of the eight 32-bit lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// One Q6_K block against one Q8_K block: ggml's eight integer lanes
/// (`ggml_vec_dot_q6_K_q8_K` on AVX2), the − 32 already taken off.
///
/// # Safety
/// `wb` is valid for reading a Q6_K block (210 bytes), `xb` a Q8_K block (292).
#[cfg(test)]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k_block_lanes(wb: *const u8, xb: *const u8) -> __m256i {
    let m3 = _mm256_set1_epi8(3);
    let m15 = _mm256_set1_epi8(15);
    // SAFETY: every offset read below is inside the two blocks: the Q8_K
    // sums at 260..292 and values at 4..260, the Q6_K low bits at 0..128,
    // high bits at 128..192 and scales at 192..208.
    unsafe {
        let q8sums = _mm256_loadu_si256(xb.add(260) as *const __m256i);
        let scales = _mm_loadu_si128(wb.add(192) as *const __m128i);
        let q8sclsub =
            _mm256_slli_epi32(_mm256_madd_epi16(q8sums, _mm256_cvtepi8_epi16(scales)), 5);
        let mut sumi = _mm256_setzero_si256();
        for j in 0..2 {
            let ql = wb.add(j * 64);
            let q4bits1 = _mm256_loadu_si256(ql as *const __m256i);
            let q4bits2 = _mm256_loadu_si256(ql.add(32) as *const __m256i);
            let q4bits_h = _mm256_loadu_si256(wb.add(128 + j * 32) as *const __m256i);
            let h0 = _mm256_slli_epi16(_mm256_and_si256(q4bits_h, m3), 4);
            let h1 = _mm256_slli_epi16(_mm256_and_si256(q4bits_h, _mm256_set1_epi8(12)), 2);
            let h2 = _mm256_and_si256(q4bits_h, _mm256_set1_epi8(48));
            let h3 = _mm256_srli_epi16(_mm256_and_si256(q4bits_h, _mm256_set1_epi8(-64)), 2);
            let q = [
                _mm256_or_si256(_mm256_and_si256(q4bits1, m15), h0),
                _mm256_or_si256(_mm256_and_si256(q4bits2, m15), h1),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m15), h2),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m15), h3),
            ];
            let mut p = [_mm256_setzero_si256(); 4];
            for k in 0..4 {
                let q8 = _mm256_loadu_si256(xb.add(4 + j * 128 + k * 32) as *const __m256i);
                // Scales of the two 16-value groups of this 32-value run, eight lanes each.
                let g = 2 * (4 * j + k);
                let s = _mm256_set_m128i(
                    _mm_set1_epi16(*wb.add(192 + g + 1) as i8 as i16),
                    _mm_set1_epi16(*wb.add(192 + g) as i8 as i16),
                );
                p[k] = _mm256_madd_epi16(s, _mm256_maddubs_epi16(q[k], q8));
            }
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p[0], p[1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p[2], p[3]));
        }
        _mm256_sub_epi32(sumi, q8sclsub)
    }
}

/// Q6_K · Q8_K over `nb` blocks: see `portable::dot_q6k_q8k` (`tiled = false`)
/// and `portable::dot_q6k_q8k_tiled`.
#[cfg(test)]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q6k(w: &[u8], x: &[u8], nb: usize, tiled: bool) -> f32 {
    assert!(w.len() >= nb * 210 && x.len() >= nb * 292);
    let mut acc = _mm256_setzero_ps();
    let mut total = 0f32;
    for i in 0..nb {
        // SAFETY: block `i < nb` of each: 210 bytes at `210 * i` of `w` and
        // 292 at `292 * i` of `x`, inside them (asserted above).
        let (yd, dw, lanes_i) = unsafe {
            let (wb, xb) = (w.as_ptr().add(i * 210), x.as_ptr().add(i * 292));
            let yd = f32::from_bits(read_u32(xb));
            let (dw, _) = two_f16(read_u32(wb.add(208)));
            (yd, dw, q6k_block_lanes(wb, xb))
        };
        if tiled {
            total = (dw * hsum_i32(lanes_i) as f32).mul_add(yd, total);
        } else {
            acc = _mm256_fmadd_ps(_mm256_set1_ps(yd * dw), _mm256_cvtepi32_ps(lanes_i), acc);
        }
    }
    if tiled {
        total
    } else {
        hsum8(lanes(acc))
    }
}

/// Activation rows a K-quant weight block is unpacked for at once.
const K_ROWS: usize = 8;

/// The sums of the lanes of each of eight vectors: lane `g` of the result is
/// the sum of `v[g]`'s lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_i32x8(v: &[__m256i; 8]) -> __m256i {
    let a01 = _mm256_hadd_epi32(v[0], v[1]);
    let a23 = _mm256_hadd_epi32(v[2], v[3]);
    let a45 = _mm256_hadd_epi32(v[4], v[5]);
    let a67 = _mm256_hadd_epi32(v[6], v[7]);
    // Each 128-bit half now holds, per vector, the sum of its lanes in that half.
    let b0 = _mm256_hadd_epi32(a01, a23);
    let b1 = _mm256_hadd_epi32(a45, a67);
    let low = _mm256_permute2x128_si256(b0, b1, 0x20);
    let high = _mm256_permute2x128_si256(b0, b1, 0x31);
    _mm256_add_epi32(low, high)
}

fn i32x8(v: __m256i) -> [i32; 8] {
    // SAFETY: `__m256i` and `[i32; 8]` have the same size, and every bit
    // pattern is a valid value of both.
    unsafe { std::mem::transmute::<__m256i, [i32; 8]>(v) }
}

/// A repacked Q4_K weight block taken apart for [`q4k_rows`]: its scales,
/// its eight groups' scales and minimums as lanes, its nibbles as bytes.
#[derive(Clone, Copy)]
struct Q4kBlock {
    d: f32,
    dmin: f32,
    scales: __m256i,
    mins: __m256i,
    q: [__m256i; 8],
}

/// The 144-byte Q4_K block `wb`, taken apart.
#[target_feature(enable = "avx2,fma,f16c")]
fn unpack_q4k(wb: &[u8]) -> Q4kBlock {
    assert!(wb.len() >= 144);
    let m4 = _mm256_set1_epi8(0x0f);
    let (mut sc, mut mn) = ([0i32; 8], [0i32; 8]);
    for g in 0..8 {
        (sc[g], mn[g]) = super::scale_min_k4(g, &wb[4..16]);
    }
    let mut q = [_mm256_setzero_si256(); 8];
    for j in 0..4 {
        // SAFETY: the nibbles at 16 + 32j .. 48 + 32j, inside the 144-byte block.
        let bits = unsafe { _mm256_loadu_si256(wb.as_ptr().add(16 + j * 32) as *const __m256i) };
        q[2 * j] = _mm256_and_si256(bits, m4);
        q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
    }
    // SAFETY: `sc` and `mn` are 8 `i32`s, 32 bytes each; the loads are unaligned.
    let (scales, mins) = unsafe {
        (
            _mm256_loadu_si256(sc.as_ptr() as *const __m256i),
            _mm256_loadu_si256(mn.as_ptr() as *const __m256i),
        )
    };
    Q4kBlock {
        d: super::f16_at(wb, 0),
        dmin: super::f16_at(wb, 2),
        scales,
        mins,
        q,
    }
}

/// One repacked Q4_K weight row against activation rows `t0..t0 + n`
/// (`n <= K_ROWS`): what [`portable::dot_q4k_q8k_by_row`] computes for each,
/// bit for bit, with each weight block unpacked once for all of them. (The
/// group dots and their scaled sums are exact integers, so computing them
/// eight groups at a time changes nothing; the float sums keep their order.)
#[target_feature(enable = "avx2,fma,f16c")]
fn q4k_rows(
    block: impl Fn(usize) -> Q4kBlock,
    nb: usize,
    x: &Activations,
    t0: usize,
    n: usize,
) -> [f32; K_ROWS] {
    assert!(n <= K_ROWS && t0 + n <= x.rows && x.row_bytes == nb * 292);
    let ones = _mm256_set1_epi16(1);
    let (mut acc, mut acc_min) = ([0f32; K_ROWS], [0f32; K_ROWS]);
    // Where every row is summed in fours (a prompt's rows), the float sums
    // run for all rows at once, a row a lane, in the same order.
    let fours = (t0..t0 + n).all(|t| x.place(t).in_fours);
    let (mut acc_v, mut acc_min_v) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for i in 0..nb {
        let Q4kBlock {
            d: dw,
            dmin: dminw,
            scales: scv,
            mins: mnv,
            q,
        } = block(i);
        let (mut all_sums, mut all_mins) = (
            [_mm256_setzero_si256(); K_ROWS],
            [_mm256_setzero_si256(); K_ROWS],
        );
        let (mut ds, mut dmins) = ([0f32; K_ROWS], [0f32; K_ROWS]);
        for k in 0..n {
            let t = t0 + k;
            let xb = &x.row(t)[i * 292..(i + 1) * 292];
            let yd = f32::from_le_bytes([xb[0], xb[1], xb[2], xb[3]]);
            let mut v = [_mm256_setzero_si256(); 8];
            for (g, v) in v.iter_mut().enumerate() {
                // SAFETY: the Q8_K values at 4 + 32g .. 36 + 32g, inside the 292-byte block.
                let q8 =
                    unsafe { _mm256_loadu_si256(xb.as_ptr().add(4 + g * 32) as *const __m256i) };
                *v = _mm256_madd_epi16(_mm256_maddubs_epi16(q[g], q8), ones);
            }
            let sums = _mm256_mullo_epi32(hsum_i32x8(&v), scv);
            // SAFETY: the Q8_K sums of 16 values, 16 `i16`s at 260 .. 292.
            let bsums = unsafe { _mm256_loadu_si256(xb.as_ptr().add(260) as *const __m256i) };
            let mins = _mm256_mullo_epi32(_mm256_madd_epi16(bsums, ones), mnv);
            let (d, dmin) = (dw * yd, dminw * yd);
            if fours {
                (all_sums[k], all_mins[k], ds[k], dmins[k]) = (sums, mins, d, dmin);
            } else if x.place(t).in_fours {
                let (s, m) = (i32x8(sums), i32x8(mins));
                for p in 0..4 {
                    acc[k] = ((s[2 * p] + s[2 * p + 1]) as f32).mul_add(d, acc[k]);
                    acc_min[k] = ((m[2 * p] + m[2 * p + 1]) as f32).mul_add(dmin, acc_min[k]);
                }
            } else {
                acc[k] = (hsum_i32(sums) as f32).mul_add(d, acc[k]);
                acc_min[k] = (hsum_i32(mins) as f32).mul_add(dmin, acc_min[k]);
            }
        }
        if fours {
            // Lane `k` of `by_group[g]` is row `k`'s sum of group `g`.
            let (by_group, by_group_min) = (transpose_i32x8(&all_sums), transpose_i32x8(&all_mins));
            // SAFETY: `ds` and `dmins` are 8 `f32`s; the loads are unaligned.
            let (d, dmin) = unsafe {
                (
                    _mm256_loadu_ps(ds.as_ptr()),
                    _mm256_loadu_ps(dmins.as_ptr()),
                )
            };
            for p in 0..4 {
                let s = _mm256_add_epi32(by_group[2 * p], by_group[2 * p + 1]);
                let m = _mm256_add_epi32(by_group_min[2 * p], by_group_min[2 * p + 1]);
                acc_v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc_v);
                acc_min_v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), dmin, acc_min_v);
            }
        }
    }
    if fours {
        return lanes(_mm256_sub_ps(acc_v, acc_min_v));
    }
    std::array::from_fn(|k| acc[k] - acc_min[k])
}

/// The 8 × 8 matrix of `v` (a vector a row) transposed: lane `k` of result
/// `g` is lane `g` of `v[k]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn transpose_i32x8(v: &[__m256i; 8]) -> [__m256i; 8] {
    // Pairs of rows interleaved by 32 bits, then by 64, then the halves swapped.
    let a: [__m256i; 8] = std::array::from_fn(|j| {
        let (x, y) = (v[2 * (j / 2)], v[2 * (j / 2) + 1]);
        if j % 2 == 0 {
            _mm256_unpacklo_epi32(x, y)
        } else {
            _mm256_unpackhi_epi32(x, y)
        }
    });
    // a[0] = v0g0 v1g0 v0g1 v1g1 | v0g4 v1g4 v0g5 v1g5; a[1] the same for g2, g3 | g6, g7.
    let b: [__m256i; 8] = std::array::from_fn(|j| {
        let (x, y) = match j / 2 {
            0 => (a[0], a[2]),
            1 => (a[1], a[3]),
            2 => (a[4], a[6]),
            _ => (a[5], a[7]),
        };
        if j % 2 == 0 {
            _mm256_unpacklo_epi64(x, y)
        } else {
            _mm256_unpackhi_epi64(x, y)
        }
    });
    // b[0] = rows 0..4 of g0 | of g4; b[1]: g1 | g5; b[2]: g2 | g6; b[3]: g3 | g7;
    // b[4..8] the same for rows 4..8.
    std::array::from_fn(|g| {
        let (lo, hi) = (b[g % 4], b[4 + g % 4]);
        if g < 4 {
            _mm256_permute2x128_si256(lo, hi, 0x20)
        } else {
            _mm256_permute2x128_si256(lo, hi, 0x31)
        }
    })
}

/// A Q6_K weight block taken apart for [`q6k_rows`]: its scale, its values
/// as bytes (0..64, eight runs of 32), each run's two group scales as 16-bit
/// lanes, and the sixteen scales widened.
#[derive(Clone, Copy)]
struct Q6kBlock {
    d: f32,
    q: [__m256i; 8],
    s: [__m256i; 8],
    scales: __m256i,
}

/// The 210-byte Q6_K block `wb`, taken apart.
#[target_feature(enable = "avx2,fma,f16c")]
fn unpack_q6k(wb: &[u8]) -> Q6kBlock {
    assert!(wb.len() >= 210);
    let m3 = _mm256_set1_epi8(3);
    let m15 = _mm256_set1_epi8(15);
    let mut q = [_mm256_setzero_si256(); 8];
    let mut s = [_mm256_setzero_si256(); 8];
    // SAFETY: every offset read is inside the 210-byte block: the low bits
    // at 0..128, high bits at 128..192 and scales at 192..208.
    let scales = unsafe {
        for j in 0..2 {
            let ql = wb.as_ptr().add(j * 64);
            let q4bits1 = _mm256_loadu_si256(ql as *const __m256i);
            let q4bits2 = _mm256_loadu_si256(ql.add(32) as *const __m256i);
            let q4bits_h = _mm256_loadu_si256(wb.as_ptr().add(128 + j * 32) as *const __m256i);
            let h0 = _mm256_slli_epi16(_mm256_and_si256(q4bits_h, m3), 4);
            let h1 = _mm256_slli_epi16(_mm256_and_si256(q4bits_h, _mm256_set1_epi8(12)), 2);
            let h2 = _mm256_and_si256(q4bits_h, _mm256_set1_epi8(48));
            let h3 = _mm256_srli_epi16(_mm256_and_si256(q4bits_h, _mm256_set1_epi8(-64)), 2);
            q[4 * j] = _mm256_or_si256(_mm256_and_si256(q4bits1, m15), h0);
            q[4 * j + 1] = _mm256_or_si256(_mm256_and_si256(q4bits2, m15), h1);
            q[4 * j + 2] =
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m15), h2);
            q[4 * j + 3] =
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m15), h3);
            for k in 0..4 {
                // Scales of the two 16-value groups of this 32-value run, eight lanes each.
                let g = 2 * (4 * j + k);
                s[4 * j + k] = _mm256_set_m128i(
                    _mm_set1_epi16(wb[192 + g + 1] as i8 as i16),
                    _mm_set1_epi16(wb[192 + g] as i8 as i16),
                );
            }
        }
        _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.as_ptr().add(192) as *const __m128i))
    };
    Q6kBlock {
        d: super::f16_at(wb, 208),
        q,
        s,
        scales,
    }
}

/// One Q6_K weight row against activation rows `t0..t0 + n` (`n <= K_ROWS`):
/// what [`dot_q6k`] computes for each (in ggml's lanes, or tiled for rows in
/// batches of 8 or more), bit for bit, with each weight block unpacked once.
/// Where all eight rows are tiled (a prompt's), their float sums run a row a
/// lane, in the same order.
#[target_feature(enable = "avx2,fma,f16c")]
fn q6k_rows(
    block: impl Fn(usize) -> Q6kBlock,
    nb: usize,
    x: &Activations,
    t0: usize,
    n: usize,
) -> [f32; K_ROWS] {
    assert!(n <= K_ROWS && t0 + n <= x.rows && x.row_bytes == nb * 292);
    let mut acc = [_mm256_setzero_ps(); K_ROWS];
    let mut total = [0f32; K_ROWS];
    let all_tiled = n == K_ROWS && (t0..t0 + n).all(|t| x.place(t).tiled);
    let mut total_v = _mm256_setzero_ps();
    for i in 0..nb {
        let Q6kBlock {
            d: dw,
            q,
            s,
            scales,
        } = block(i);
        let mut all_lanes = [_mm256_setzero_si256(); K_ROWS];
        let mut yds = [0f32; K_ROWS];
        for k in 0..n {
            let t = t0 + k;
            let xb = &x.row(t)[i * 292..(i + 1) * 292];
            let yd = f32::from_le_bytes([xb[0], xb[1], xb[2], xb[3]]);
            // SAFETY: the Q8_K sums at 260..292 and values at 4..260, inside the block.
            let lanes_i = unsafe {
                let q8sums = _mm256_loadu_si256(xb.as_ptr().add(260) as *const __m256i);
                let q8sclsub = _mm256_slli_epi32(_mm256_madd_epi16(q8sums, scales), 5);
                let mut sumi = _mm256_setzero_si256();
                for j in 0..2 {
                    let mut p = [_mm256_setzero_si256(); 4];
                    for (kk, p) in p.iter_mut().enumerate() {
                        let at = 4 + j * 128 + kk * 32;
                        let q8 = _mm256_loadu_si256(xb.as_ptr().add(at) as *const __m256i);
                        *p = _mm256_madd_epi16(
                            s[4 * j + kk],
                            _mm256_maddubs_epi16(q[4 * j + kk], q8),
                        );
                    }
                    sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p[0], p[1]));
                    sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p[2], p[3]));
                }
                _mm256_sub_epi32(sumi, q8sclsub)
            };
            if all_tiled {
                (all_lanes[k], yds[k]) = (lanes_i, yd);
            } else if x.place(t).tiled {
                total[k] = (dw * hsum_i32(lanes_i) as f32).mul_add(yd, total[k]);
            } else {
                acc[k] =
                    _mm256_fmadd_ps(_mm256_set1_ps(yd * dw), _mm256_cvtepi32_ps(lanes_i), acc[k]);
            }
        }
        if all_tiled {
            // Lane `k`: row `k`'s `(dw * sum) · yd + total`, as above (the
            // lanes' sums are exact integers whichever way they are added).
            let sums = _mm256_cvtepi32_ps(hsum_i32x8(&all_lanes));
            // SAFETY: `yds` holds eight floats; the load is unaligned.
            let yd = unsafe { _mm256_loadu_ps(yds.as_ptr()) };
            total_v = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(dw), sums), yd, total_v);
        }
    }
    if all_tiled {
        return lanes(total_v);
    }
    std::array::from_fn(|k| {
        if k < n && x.place(t0 + k).tiled {
            total[k]
        } else {
            hsum8(lanes(acc[k]))
        }
    })
}
