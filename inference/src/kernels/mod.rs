//! The CPU kernels of Wick's own llama engine: GGUF's quantized block formats,
//! their dot products, and the element-wise math of a transformer layer.
//!
//! Every kernel computes what ggml's CPU backend computes on an AVX2 machine,
//! operation for operation and in the same order (the same lanes, the same
//! fused multiply-adds, the same horizontal sums): that is what makes Wick's
//! greedy tokens equal llama.cpp's, not just close. The AVX2 versions are
//! chosen once, when a model is loaded ([`Kernels::detect`], kept on the
//! model); the portable versions compute bit-identical results lane by lane,
//! only slower.

mod attend;
mod avx2;
mod portable;

pub(crate) use attend::HeadGroup;

use half::f16;

/// Values per quantized block (`QK4_1`, `QK8_0`, `QK8_1` in ggml).
pub const QK: usize = 32;
/// Values per K-quant super-block (`QK_K`).
pub const QK_K: usize = 256;

/// The formats a weight matrix may be stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightType {
    /// 4-bit with a scale and a minimum per block: `{d: f16, m: f16, qs: [u8; 16]}`.
    Q4_1,
    /// 8-bit with a scale per block: `{d: f16, qs: [i8; 32]}`.
    Q8_0,
    /// 5-bit with a scale per block: `{d: f16, qh: u32 (fifth bits), qs: [u8; 16]}`, values − 16.
    Q5_0,
    /// 4-bit K-quant: `{d: f16, dmin: f16, scales: [u8; 12] (6-bit scales and mins of
    /// eight 32-value groups), qs: [u8; 128]}` per 256 values.
    Q4K,
    /// Q4_K in a matrix of a multiple of 8 rows: llama.cpp repacks those on
    /// AVX2 machines (8 rows interleaved) and sums each row's blocks in one
    /// float lane, which rounds differently; the same bytes, computed that way.
    Q4KRows8,
    /// 6-bit K-quant: `{ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16}` per 256 values, values − 32.
    Q6K,
}

impl WeightType {
    pub fn block_bytes(self) -> usize {
        match self {
            Self::Q4_1 => 20,
            Self::Q8_0 => 34,
            Self::Q5_0 => 22,
            Self::Q4K | Self::Q4KRows8 => 144,
            Self::Q6K => 210,
        }
    }

    /// Values per block.
    pub fn block_len(self) -> usize {
        match self {
            Self::Q4K | Self::Q4KRows8 | Self::Q6K => QK_K,
            _ => QK,
        }
    }

    /// Bytes of a row of `cols` values.
    pub fn row_bytes(self, cols: usize) -> usize {
        cols / self.block_len() * self.block_bytes()
    }

    /// The format activations are quantized to before a dot product with this
    /// weight type (ggml's `vec_dot_type`).
    pub fn activation_type(self) -> ActivationType {
        match self {
            Self::Q4_1 => ActivationType::Q8_1,
            Self::Q8_0 | Self::Q5_0 => ActivationType::Q8_0,
            Self::Q4K | Self::Q4KRows8 | Self::Q6K => ActivationType::Q8K,
        }
    }
}

/// Quantized activations: `Q8_1` is `{d: f16, s: f16 (= d * sum of qs), qs: [i8; 32]}`;
/// `Q8K` is `{d: f32, qs: [i8; 256], bsums: [i16; 16] (sums of 16 values)}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationType {
    Q8_0,
    Q8_1,
    Q8K,
}

impl ActivationType {
    pub fn block_bytes(self) -> usize {
        match self {
            Self::Q8_0 => 34,
            Self::Q8_1 => 36,
            Self::Q8K => 292,
        }
    }

    pub fn block_len(self) -> usize {
        match self {
            Self::Q8K => QK_K,
            _ => QK,
        }
    }
}

pub(crate) fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

fn f16_bytes(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_bits().to_le_bytes()
}

/// The implementation of the kernels that differ by CPU, chosen once when a
/// model is loaded and kept on it, so that the hot loops only branch on this
/// value and never ask the CPU again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernels {
    /// Plain Rust, lane by lane as the AVX2 versions compute.
    Portable,
    /// AVX2, FMA and F16C; the token proves that the CPU has them.
    #[cfg(target_arch = "x86_64")]
    Avx2(avx2::Avx2),
}

impl Kernels {
    /// The fastest kernels this CPU runs: AVX2 (with FMA and F16C) unless the
    /// CPU lacks them or `WICK_NO_AVX2` is set, else the portable ones.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::env::var_os("WICK_NO_AVX2").is_none() {
            if let Some(token) = avx2::Avx2::detect() {
                return Self::Avx2(token);
            }
        }
        Self::Portable
    }

    /// `out[t * out_stride + r] = dot(weight row r, activation row t)` for the
    /// rows `rows` of `w` (each `row_bytes` long, in format `ty`) and every
    /// row `t` of `x`. Panics unless `x` is in `ty`'s activation format with
    /// as many blocks a row and `w` holds the rows.
    ///
    /// # Safety
    /// `out` must be valid for writes at every `t * out_stride + r` (`r` in
    /// `rows`, `t < x.rows()`), and no one else may access those values meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn matmul_rows(
        self,
        ty: WeightType,
        w: &[u8],
        row_bytes: usize,
        rows: std::ops::Range<usize>,
        x: &Activations,
        out: *mut f32,
        out_stride: usize,
    ) {
        // What the kernels' pointer arithmetic relies on, checked once a call.
        assert_eq!(ty.activation_type(), x.ty);
        assert_eq!(
            row_bytes / ty.block_bytes(),
            x.row_bytes / x.ty.block_bytes()
        );
        assert!(rows
            .end
            .checked_mul(row_bytes)
            .is_some_and(|end| end <= w.len()));
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the sizes were checked above (and `x`'s own lengths hold
            // by construction); `out` is the caller's promise.
            Self::Avx2(avx2) => unsafe {
                avx2.matmul_rows(ty, w, row_bytes, rows, x, out, out_stride)
            },
            // SAFETY: as above.
            Self::Portable => unsafe {
                portable::matmul_rows(ty, w, row_bytes, rows, x, out, out_stride)
            },
        }
    }

    /// One attention task (see [`HeadGroup`]) into `out`, as one loop.
    pub(crate) fn attend_heads(self, g: &HeadGroup<'_>, out: &mut [f32]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx2(avx2) => avx2.attend_heads(g, out),
            Self::Portable => attend::attend_heads_with(portable::F16, g, out),
        }
    }

    /// [`Activations::quantize`] with this CPU's kernels: the same bytes.
    pub(crate) fn quantize(
        self,
        ty: ActivationType,
        x: &[f32],
        rows: usize,
        cols: usize,
    ) -> Activations {
        Activations::quantize_with(ty, x, rows, cols, |x, out| match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx2(avx2) => avx2.quantize_row(ty, x, out),
            Self::Portable => quantize_row(ty, x, out),
        })
    }
}

/// Quantizes `x` (a whole number of blocks) into `out`, as ggml's
/// `quantize_row_q8_0` / `quantize_row_q8_1` do: scale = max|x| / 127, values
/// rounded to nearest even, the scale (and Q8_1's sum) stored as f16.
fn quantize_row(ty: ActivationType, x: &[f32], out: &mut [u8]) {
    if ty == ActivationType::Q8K {
        return quantize_row_q8k(x, out);
    }
    let bb = ty.block_bytes();
    debug_assert_eq!(x.len() % QK, 0);
    debug_assert_eq!(out.len(), x.len() / QK * bb);
    for (block, o) in x.chunks_exact(QK).zip(out.chunks_exact_mut(bb)) {
        let max = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = max / 127.0;
        let id = if max != 0.0 { 127.0 / max } else { 0.0 };
        o[0..2].copy_from_slice(&f16_bytes(d));
        let qs_at = bb - QK;
        let mut sum = 0i32;
        for (q, v) in o[qs_at..].iter_mut().zip(block) {
            let r = (v * id).round_ties_even() as i32;
            sum += r;
            *q = r as i8 as u8;
        }
        if ty == ActivationType::Q8_1 {
            o[2..4].copy_from_slice(&f16_bytes(d * sum as f32));
        }
    }
}

/// ggml's `quantize_row_q8_K_ref`: the scale from the value of largest
/// magnitude (its sign kept, the first one on ties), kept as f32, and the sums
/// of each 16 values.
fn quantize_row_q8k(x: &[f32], out: &mut [u8]) {
    for (block, o) in x.chunks_exact(QK_K).zip(out.chunks_exact_mut(292)) {
        let (mut max, mut amax) = (0f32, 0f32);
        for v in block {
            if v.abs() > amax {
                amax = v.abs();
                max = *v;
            }
        }
        if amax == 0.0 {
            o.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        for (q, v) in o[4..260].iter_mut().zip(block) {
            *q = ((iscale * v).round_ties_even() as i32).min(127) as i8 as u8;
        }
        for j in 0..16 {
            let sum: i32 = o[4 + j * 16..4 + j * 16 + 16]
                .iter()
                .map(|q| *q as i8 as i32)
                .sum();
            o[260 + 2 * j..262 + 2 * j].copy_from_slice(&(sum as i16).to_le_bytes());
        }
        o[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

/// The 6-bit scale and min of group `j` (0..8) of a Q4_K block's 12 scale bytes
/// (ggml's `get_scale_min_k4`).
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (i32, i32) {
    if j < 4 {
        ((q[j] & 63) as i32, (q[j + 4] & 63) as i32)
    } else {
        (
            ((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4)) as i32,
            ((q[j + 4] >> 4) | ((q[j] >> 6) << 4)) as i32,
        )
    }
}

/// Value `e` (0..256) of a Q6_K block, before the − 32.
pub(crate) fn q6k_value(block: &[u8], e: usize) -> i32 {
    let (half, r) = (e / 128, e % 128);
    let (k, b) = (r / 32, r % 32);
    let ql = &block[half * 64..half * 64 + 64];
    let qh = block[128 + half * 32 + b];
    let low = match k {
        0 => ql[b] & 15,
        1 => ql[32 + b] & 15,
        2 => ql[b] >> 4,
        _ => ql[32 + b] >> 4,
    };
    (low | (((qh >> (2 * k)) & 3) << 4)) as i32
}

/// Rows of activations quantized for one weight type, `[row][blocks]`, with
/// each block's scale (and Q8_1's sum) also kept as f32 for the kernels.
///
/// The fields are private so that their lengths agree, as the kernels'
/// pointer arithmetic relies on: `data` is `rows * row_bytes` bytes, and
/// `scales` (and, for Q8_1, `sums`) hold `rows * blocks` values.
pub struct Activations {
    ty: ActivationType,
    data: Vec<u8>,
    row_bytes: usize,
    rows: usize,
    /// `[row][block]`: the f16 scale, widened.
    scales: Vec<f32>,
    /// `[row][block]`: Q8_1's f16 `d * sum`, widened (empty for Q8_0).
    sums: Vec<f32>,
    /// Per row, how llama.cpp would take it in a K-quant product if its
    /// sequence ran alone (see [`Activations::grouped`]).
    batch: Vec<BatchPlace>,
}

/// Where a row sits in its own sequence's rows, which is what llama.cpp's
/// K-quant products choose their kernel by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BatchPlace {
    /// Among the rows its repacked Q4_K takes four at a time.
    pub(crate) in_fours: bool,
    /// In a batch of 8 rows or more (its tiled product).
    pub(crate) tiled: bool,
}

impl BatchPlace {
    /// The places of `len` rows of one sequence.
    fn of_group(len: usize) -> impl Iterator<Item = Self> {
        let in_fours = len - len % 4;
        (0..len).map(move |t| Self {
            in_fours: t < in_fours,
            tiled: len >= 8,
        })
    }
}

impl Activations {
    /// `x` holds `rows` rows of `cols` values, quantized by the portable code
    /// (the model uses [`Kernels::quantize`]; the tests compare the two).
    #[cfg(test)]
    pub fn quantize(ty: ActivationType, x: &[f32], rows: usize, cols: usize) -> Self {
        Self::quantize_with(ty, x, rows, cols, |x, out| quantize_row(ty, x, out))
    }

    /// As [`Self::quantize`], each row quantized by `row(x, out)`.
    fn quantize_with(
        ty: ActivationType,
        x: &[f32],
        rows: usize,
        cols: usize,
        row: impl Fn(&[f32], &mut [u8]),
    ) -> Self {
        let bb = ty.block_bytes();
        let row_bytes = cols / ty.block_len() * bb;
        let mut data = vec![0u8; rows * row_bytes];
        for (x, out) in x.chunks_exact(cols).zip(data.chunks_exact_mut(row_bytes)) {
            row(x, out);
        }
        let scales = match ty {
            ActivationType::Q8K => Vec::new(),
            _ => data.chunks_exact(bb).map(|b| f16_at(b, 0)).collect(),
        };
        let sums = match ty {
            ActivationType::Q8_1 => data.chunks_exact(bb).map(|b| f16_at(b, 2)).collect(),
            _ => Vec::new(),
        };
        Self {
            ty,
            data,
            row_bytes,
            rows,
            scales,
            sums,
            batch: BatchPlace::of_group(rows).collect(),
        }
    }

    /// The same rows, read as the rows of several sequences in a row, `lengths`
    /// rows each: K-quant products then compute each sequence's rows as they
    /// would if it ran alone, so that batching never changes a sequence's
    /// numbers. (Other formats compute every row the same way anyway.)
    pub fn grouped(mut self, lengths: &[usize]) -> Self {
        assert_eq!(lengths.iter().sum::<usize>(), self.rows);
        self.batch = lengths
            .iter()
            .flat_map(|&len| BatchPlace::of_group(len))
            .collect();
        self
    }

    /// The format the rows are quantized to.
    pub fn ty(&self) -> ActivationType {
        self.ty
    }

    /// How many rows (tokens) there are.
    pub fn rows(&self) -> usize {
        self.rows
    }

    fn row(&self, t: usize) -> &[u8] {
        &self.data[t * self.row_bytes..(t + 1) * self.row_bytes]
    }

    fn place(&self, t: usize) -> BatchPlace {
        self.batch[t]
    }
}

/// Value `j` (0..32) of a Q5_0 block: a nibble, its fifth bit from `qh`, minus 16.
pub(crate) fn q5_0_value(block: &[u8], j: usize) -> i32 {
    let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
    let nibble = if j < 16 {
        block[6 + j] & 0x0f
    } else {
        block[6 + j - 16] >> 4
    };
    (nibble as i32 | (((qh >> j) & 1) as i32) << 4) - 16
}

/// One row of a weight matrix expanded to f32 (for the token embedding).
pub fn dequantize_row(ty: WeightType, row: &[u8], out: &mut [f32]) {
    let bb = ty.block_bytes();
    for (b, o) in row
        .chunks_exact(bb)
        .zip(out.chunks_exact_mut(ty.block_len()))
    {
        let d = f16_at(b, 0);
        match ty {
            WeightType::Q4K | WeightType::Q4KRows8 => {
                let dmin = f16_at(b, 2);
                for (e, o) in o.iter_mut().enumerate() {
                    let (j, r) = (e / 64, e % 64);
                    let (sc, m) = scale_min_k4(2 * j + r / 32, &b[4..16]);
                    let byte = b[16 + j * 32 + r % 32];
                    let q = if r < 32 { byte & 15 } else { byte >> 4 };
                    *o = d * sc as f32 * q as f32 - dmin * m as f32;
                }
            }
            WeightType::Q6K => {
                let d = f16_at(b, 208);
                for (e, o) in o.iter_mut().enumerate() {
                    let sc = b[192 + e / 16] as i8 as f32;
                    *o = d * sc * (q6k_value(b, e) - 32) as f32;
                }
            }
            WeightType::Q8_0 => {
                for (o, q) in o.iter_mut().zip(&b[2..]) {
                    *o = (*q as i8) as f32 * d;
                }
            }
            WeightType::Q4_1 => {
                let m = f16_at(b, 2);
                for (j, q) in b[4..].iter().enumerate() {
                    o[j] = (q & 0x0f) as f32 * d + m;
                    o[j + 16] = (q >> 4) as f32 * d + m;
                }
            }
            WeightType::Q5_0 => {
                for (j, o) in o.iter_mut().enumerate() {
                    *o = q5_0_value(b, j) as f32 * d;
                }
            }
        }
    }
}

/// ggml's `hsum_float_8`: the horizontal sum of eight lanes, in its order.
pub(crate) fn hsum8(a: [f32; 8]) -> f32 {
    let r = [a[4] + a[0], a[5] + a[1], a[6] + a[2], a[7] + a[3]];
    (r[0] + r[2]) + (r[1] + r[3])
}

pub(crate) fn h2f(v: u16) -> f32 {
    f16::from_bits(v).to_f32()
}

pub fn to_f16(x: &[f32], out: &mut [u16]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o = f16::from_f32(*v).to_bits();
    }
}

/// ggml's vectorised `expf` (`ggml_v_expf`, after ARM's optimized routines),
/// lane by lane: within 1.5 ulp of `expf`, and exactly what llama.cpp's SiLU uses.
pub fn v_expf(x: f32) -> f32 {
    let f = f32::from_bits;
    let r = f(0x4b40_0000);
    let z = x.mul_add(f(0x3fb8_aa3b), r);
    let n = z - r;
    let b = (-n).mul_add(f(0x35bf_be8e), (-n).mul_add(f(0x3f31_7200), x));
    let e = z.to_bits() << 23;
    let k = f(e.wrapping_add(1f32.to_bits()));
    let u = b * b;
    let j = f(0x3c07_2010)
        .mul_add(b, f(0x3d2b_9f17))
        .mul_add(u, f(0x3e2a_af33).mul_add(b, f(0x3eff_fedb)))
        .mul_add(u, f(0x3f7f_fff6) * b);
    if n.abs() <= 126.0 {
        return j.mul_add(k, k);
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = f(g.wrapping_add(0x7f00_0000));
    let s2 = f(e.wrapping_sub(g));
    if n.abs() > 192.0 {
        s1 * s1
    } else {
        s2.mul_add(j, s2) * s1
    }
}

/// `silu(gate) * up`, as ggml's `ggml_vec_swiglu_f32` on AVX2.
pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, g), u) in out.iter_mut().zip(gate).zip(up) {
        let silu = g / (1.0 + v_expf(0.0 - g));
        *o = silu * u;
    }
}

/// ggml's GELU (tanh form), as its CPU backend applies it: looked up in a
/// table of every f16 input, computed once.
fn gelu_table() -> &'static [u16] {
    use std::sync::OnceLock;
    static TABLE: OnceLock<Vec<u16>> = OnceLock::new();
    TABLE.get_or_init(|| {
        const GELU_COEF_A: f32 = 0.044715;
        const SQRT_2_OVER_PI: f32 = 0.797_884_6;
        (0..=u16::MAX)
            .map(|bits| {
                let x = h2f(bits);
                let inner = SQRT_2_OVER_PI * x * (GELU_COEF_A * x).mul_add(x, 1.0);
                f16::from_f32(0.5 * x * (1.0 + inner.tanh())).to_bits()
            })
            .collect()
    })
}

/// `gelu(gate) * up` (ggml's `ggml_vec_geglu_f32`).
pub fn geglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let table = gelu_table();
    for ((o, g), u) in out.iter_mut().zip(gate).zip(up) {
        *o = if *g <= -10.0 {
            0.0
        } else if *g >= 10.0 {
            g * u
        } else {
            h2f(table[f16::from_f32(*g).to_bits() as usize]) * u
        };
    }
}

/// RMS norm times the norm's weight, as ggml computes it: the sum of squares
/// in f64, then `x * (1 / sqrt(mean + eps))`, then `* w`.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let sum: f64 = x.iter().map(|v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, v), w) in out.iter_mut().zip(x).zip(w) {
        *o = (v * scale) * w;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 4.0
            })
            .collect()
    }

    /// The AVX2 kernels, or `None` after saying on stderr that `test` checked
    /// nothing here, and why (a test that needs AVX2 must not pass silently).
    fn avx2_or_skip(test: &str) -> Option<Kernels> {
        match Kernels::detect() {
            Kernels::Portable => {
                eprintln!(
                    "SKIPPED {test}: this CPU lacks AVX2, FMA or F16C (or WICK_NO_AVX2 is set), \
                     so there are no AVX2 kernels to compare with the portable ones"
                );
                None
            }
            avx2 => Some(avx2),
        }
    }

    /// `x.rows()` × `rows` products of `w` with `x`, by `kernels`.
    fn matmul(
        kernels: Kernels,
        ty: WeightType,
        w: &[u8],
        rows: usize,
        x: &Activations,
    ) -> Vec<f32> {
        let rb = w.len() / rows;
        let mut out = vec![f32::NAN; x.rows() * rows];
        // SAFETY: `out` holds every (token, row) written, and nothing else uses it.
        unsafe { kernels.matmul_rows(ty, w, rb, 0..rows, x, out.as_mut_ptr(), rows) };
        out
    }

    /// Random bytes for `rows` rows of `cols` values of a K-quant, with sane
    /// f16 scales: d and dmin (Q4_K) at the front, d (Q6_K) at the end.
    fn k_quant_weights(ty: WeightType, rows: usize, cols: usize, seed: u32) -> Vec<u8> {
        let mut seed = seed;
        let mut w: Vec<u8> = (0..rows * ty.row_bytes(cols))
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 24) as u8
            })
            .collect();
        for b in w.chunks_exact_mut(ty.block_bytes()) {
            let at = if ty == WeightType::Q6K { 208 } else { 0 };
            b[at..at + 2].copy_from_slice(&f16_bytes(0.01));
            if ty != WeightType::Q6K {
                b[2..4].copy_from_slice(&f16_bytes(0.02));
            }
        }
        w
    }

    /// Quantizes weights with a simple Q4_1 / Q8_0 / Q5_0 writer, good enough
    /// to make blocks for comparing kernels.
    fn weights(ty: WeightType, x: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        for b in x.chunks_exact(QK) {
            match ty {
                WeightType::Q8_0 => {
                    let mut blk = vec![0u8; 34];
                    quantize_row(ActivationType::Q8_0, b, &mut blk);
                    out.extend(blk);
                }
                WeightType::Q5_0 => {
                    let max = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let d = max / 15.0;
                    out.extend(f16_bytes(d));
                    let q: Vec<u32> = b
                        .iter()
                        .map(|v| ((v / d).round() + 16.0).clamp(0.0, 31.0) as u32)
                        .collect();
                    let qh: u32 = q.iter().enumerate().map(|(j, q)| ((q >> 4) & 1) << j).sum();
                    out.extend(qh.to_le_bytes());
                    for j in 0..16 {
                        out.push((q[j] & 0x0f) as u8 | (((q[j + 16] & 0x0f) as u8) << 4));
                    }
                }
                WeightType::Q4_1 => {
                    let min = b.iter().cloned().fold(f32::MAX, f32::min);
                    let max = b.iter().cloned().fold(f32::MIN, f32::max);
                    let d = (max - min) / 15.0;
                    out.extend(f16_bytes(d));
                    out.extend(f16_bytes(min));
                    for j in 0..16 {
                        let q = |v: f32| ((v - min) / d).round().clamp(0.0, 15.0) as u8;
                        out.push(q(b[j]) | (q(b[j + 16]) << 4));
                    }
                }
                WeightType::Q4K | WeightType::Q4KRows8 | WeightType::Q6K => {
                    unreachable!("tested on their own")
                }
            }
        }
        out
    }

    #[test]
    fn avx2_and_portable_kernels_agree_bit_for_bit() {
        let Some(avx2) = avx2_or_skip("avx2_and_portable_kernels_agree_bit_for_bit") else {
            return;
        };
        // Where the CPU has VNNI, its tiled Q8_0/Q5_0 product and the plain
        // AVX2 one are both compared.
        let mut fast_kernels = vec![avx2];
        if let Kernels::Avx2(token) = avx2 {
            if token.has_vnni() {
                fast_kernels.push(Kernels::Avx2(token.without_vnni()));
            } else {
                eprintln!("note: this CPU lacks AVX-512 VNNI; only the AVX2 product is compared");
            }
        }
        for ty in [WeightType::Q4_1, WeightType::Q8_0, WeightType::Q5_0] {
            // Whole tiles and tiles cut short on both sides.
            for (rows, tokens) in [(7, 3), (9, 9), (5, 1), (8, 4), (12, 11), (4, 2)] {
                let cols = 576;
                let w = weights(ty, &pseudo_random(rows * cols, 1));
                let at = ty.activation_type();
                let xs: Vec<f32> = (0..tokens)
                    .flat_map(|t| pseudo_random(cols, 10 + t as u32))
                    .collect();
                let x = Activations::quantize(at, &xs, tokens, cols);
                let slow = matmul(Kernels::Portable, ty, &w, rows, &x);
                let fast = matmul(avx2, ty, &w, rows, &x);
                for kernels in &fast_kernels {
                    let fast = matmul(*kernels, ty, &w, rows, &x);
                    assert_eq!(fast, slow, "{kernels:?} {ty:?} {rows}x{tokens}");
                }
                // And both are the dot product of what the blocks hold.
                let rb = ty.row_bytes(cols);
                let mut wf = vec![0f32; cols];
                dequantize_row(ty, &w[..rb], &mut wf);
                let xs = pseudo_random(cols, 10);
                let exact: f32 = wf.iter().zip(&xs).map(|(a, b)| a * b).sum();
                assert!(
                    (fast[0] - exact).abs() < 0.05 * exact.abs().max(1.0),
                    "{ty:?}: {} vs {exact}",
                    fast[0]
                );
            }
        }
    }

    #[test]
    fn vector_quantization_gives_the_portable_bytes() {
        let Some(avx2) = avx2_or_skip("vector_quantization_gives_the_portable_bytes") else {
            return;
        };
        let cols = 512;
        let mut xs = pseudo_random(cols * 3, 77);
        // A row of zeros; ties at .5 after scaling (127 / 127 · k + .5); the
        // largest magnitude twice, negative first, in the second Q8_K block.
        xs[..cols].fill(0.0);
        for (i, v) in xs[cols..cols + 64].iter_mut().enumerate() {
            *v = (i as f32 - 32.0) + 0.5;
        }
        xs[cols * 2 + 300] = -9.0;
        xs[cols * 2 + 400] = 9.0;
        for ty in [
            ActivationType::Q8_0,
            ActivationType::Q8_1,
            ActivationType::Q8K,
        ] {
            let fast = avx2.quantize(ty, &xs, 3, cols);
            let slow = Activations::quantize(ty, &xs, 3, cols);
            assert_eq!(fast.data, slow.data, "{ty:?}");
            assert_eq!(fast.scales, slow.scales, "{ty:?}");
            assert_eq!(fast.sums, slow.sums, "{ty:?}");
        }
    }

    #[test]
    fn f16_kernels_agree_bit_for_bit_with_their_portable_versions() {
        use attend::F16Ops;
        let mut x = vec![0u16; 70];
        let mut y = vec![0u16; 70];
        to_f16(&pseudo_random(70, 5), &mut x);
        to_f16(&pseudo_random(70, 6), &mut y);
        let p = portable::F16;
        let (mut xw, mut yw) = (vec![0f32; 70], vec![0f32; 70]);
        p.widen(&x, &mut xw);
        p.widen(&y, &mut yw);
        let exact: f32 = x.iter().zip(&y).map(|(a, b)| h2f(*a) * h2f(*b)).sum();
        assert!((p.dot(&xw, &yw) - exact).abs() < 1e-3 * exact.abs().max(1.0));
        let Some(Kernels::Avx2(avx2)) =
            avx2_or_skip("f16_kernels_agree_bit_for_bit_with_their_portable_versions")
        else {
            return;
        };
        let mut widened = vec![0f32; 70];
        avx2.widen(&x, &mut widened);
        assert_eq!(widened, xw);
        for n in [64, 70] {
            assert_eq!(avx2.dot(&xw[..n], &yw[..n]), p.dot(&xw[..n], &yw[..n]));
            let (mut a, mut b) = (y[..n].to_vec(), y[..n].to_vec());
            avx2.mad(&mut a, &xw, 0.37);
            p.mad(&mut b, &xw, 0.37);
            assert_eq!(a, b);
            avx2.scale(&mut a, 0.61);
            p.scale(&mut b, 0.61);
            assert_eq!(a, b);
        }
    }

    /// The attention loop, both CPUs' versions: three heads of 64 over 40
    /// keys of the second of two key/value heads (a window from key 5).
    #[test]
    fn attention_loops_agree_bit_for_bit() {
        let Some(avx2) = avx2_or_skip("attention_loops_agree_bit_for_bit") else {
            return;
        };
        let (hd, kv_dim, keys) = (64, 128, 40);
        let queries: Vec<f32> = pseudo_random(3 * hd, 8)
            .iter()
            .map(|v| f16::from_f32(*v * 4.0).to_f32())
            .collect();
        let (mut k, mut v) = (vec![0u16; keys * kv_dim], vec![0u16; keys * kv_dim]);
        to_f16(&pseudo_random(keys * kv_dim, 9), &mut k);
        to_f16(&pseudo_random(keys * kv_dim, 10), &mut v);
        let g = HeadGroup {
            queries: &queries,
            k: &k,
            v: &v,
            kv_dim,
            kvh: hd,
            keys: 5..=keys - 1,
            scale: 0.125,
            hd,
        };
        let (mut fast, mut slow) = (vec![0f32; 3 * hd], vec![0f32; 3 * hd]);
        avx2.attend_heads(&g, &mut fast);
        Kernels::Portable.attend_heads(&g, &mut slow);
        assert_eq!(fast, slow);
        // A weighted mean of values in -2..2 (summed in f16), not all zero.
        assert!(slow.iter().all(|o| o.abs() <= 2.01) && slow.iter().any(|o| *o != 0.0));
    }

    /// Q4_K and Q6_K blocks with arbitrary bits: the dot product must equal the
    /// dequantized weights · dequantized activations (exact integers, then
    /// scales), with every implementation this CPU has.
    #[test]
    fn k_quant_dots_match_their_dequantized_values() {
        let cols = 512;
        let xs = pseudo_random(cols, 21);
        let x = Activations::quantize(ActivationType::Q8K, &xs, 1, cols);
        let mut xq = vec![0f32; cols];
        for (b, o) in x.data.chunks_exact(292).zip(xq.chunks_exact_mut(256)) {
            let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            for (o, q) in o.iter_mut().zip(&b[4..260]) {
                *o = *q as i8 as f32 * d;
            }
            // The stored sums are the sums of the stored values.
            for j in 0..16 {
                let sum: i32 = b[4 + 16 * j..20 + 16 * j]
                    .iter()
                    .map(|q| *q as i8 as i32)
                    .sum();
                assert_eq!(
                    i16::from_le_bytes([b[260 + 2 * j], b[261 + 2 * j]]) as i32,
                    sum
                );
            }
        }
        let mut implementations = vec![Kernels::Portable];
        implementations.extend(avx2_or_skip(
            "k_quant_dots_match_their_dequantized_values (AVX2 part)",
        ));
        for kernels in implementations {
            for ty in [WeightType::Q4K, WeightType::Q4KRows8, WeightType::Q6K] {
                let w = k_quant_weights(ty, 1, cols, 7);
                let mut wf = vec![0f32; cols];
                dequantize_row(ty, &w, &mut wf);
                let expect: f64 = wf.iter().zip(&xq).map(|(a, b)| *a as f64 * *b as f64).sum();
                let got = matmul(kernels, ty, &w, 1, &x);
                assert!(
                    (got[0] as f64 - expect).abs() < 1e-3 * expect.abs().max(1.0),
                    "{kernels:?} {ty:?}: {} vs {expect}",
                    got[0]
                );
            }
        }
    }

    /// With AVX2, the K-quant kernels compute what their portable versions do,
    /// bit for bit: one block dot, and whole products at the batch sizes where
    /// llama.cpp changes kernels (four rows at a time, tiled from 8 rows).
    #[test]
    fn k_quant_kernels_agree_with_their_portable_versions() {
        let Some(avx2) = avx2_or_skip("k_quant_kernels_agree_with_their_portable_versions") else {
            return;
        };
        let cols = 512;
        let xs = pseudo_random(cols, 33);
        let x = Activations::quantize(ActivationType::Q8K, &xs, 1, cols);
        let w = k_quant_weights(WeightType::Q6K, 1, cols, 99);
        #[cfg(target_arch = "x86_64")]
        for tiled in [false, true] {
            let Kernels::Avx2(token) = avx2 else {
                unreachable!("avx2_or_skip gives AVX2 kernels")
            };
            let fast = token.dot_q6k(&w, &x.data, 2, tiled);
            let slow = if tiled {
                portable::dot_q6k_q8k_tiled(&w, &x.data, 2)
            } else {
                portable::dot_q6k_q8k(&w, &x.data, 2)
            };
            assert_eq!(
                fast.to_bits(),
                slow.to_bits(),
                "tiled {tiled}: {fast} vs {slow}"
            );
        }
        for ty in [WeightType::Q4K, WeightType::Q4KRows8, WeightType::Q6K] {
            let rows = 3;
            let w = k_quant_weights(ty, rows, cols, 5);
            // One sequence of each size, and a batch of sequences of several
            // sizes (each row computed as its own sequence's).
            let batches: [&[usize]; 6] = [&[1], &[4], &[6], &[9], &[17], &[3, 9, 1, 4, 8]];
            for lengths in batches {
                let tokens: usize = lengths.iter().sum();
                let xs: Vec<f32> = (0..tokens)
                    .flat_map(|t| pseudo_random(cols, 40 + t as u32))
                    .collect();
                let x =
                    Activations::quantize(ActivationType::Q8K, &xs, tokens, cols).grouped(lengths);
                let fast = matmul(avx2, ty, &w, rows, &x);
                let slow = matmul(Kernels::Portable, ty, &w, rows, &x);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast), bits(&slow), "{ty:?} {rows}x{lengths:?}");
            }
        }
    }

    #[test]
    fn v_expf_is_within_two_ulp_of_expf() {
        for i in -2000..2000 {
            let x = i as f32 * 0.0437;
            let (a, b) = (v_expf(x), x.exp());
            let ulp = (a.to_bits() as i64 - b.to_bits() as i64).abs();
            assert!(ulp <= 2, "{x}: {a} vs {b}");
        }
        assert_eq!(v_expf(-200.0), 0.0);
        assert_eq!(v_expf(100.0), f32::INFINITY);
    }

    #[test]
    fn q8_1_stores_the_scaled_sum() {
        let x = pseudo_random(64, 3);
        let mut q = vec![0u8; 72];
        quantize_row(ActivationType::Q8_1, &x, &mut q);
        let max = x[..32].iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = max / 127.0;
        assert_eq!(f16_at(&q, 0), f16::from_f32(d).to_f32());
        let sum: i32 = q[4..36].iter().map(|b| *b as i8 as i32).sum();
        assert_eq!(f16_at(&q, 2), f16::from_f32(d * sum as f32).to_f32());
        // The largest value becomes ±127 and every value is within half a step.
        assert!(q[4..36].iter().any(|b| (*b as i8).unsigned_abs() == 127));
        for (v, b) in x[..32].iter().zip(&q[4..36]) {
            assert!((*b as i8 as f32 * d - v).abs() <= d * 0.5 + 1e-6);
        }
    }
}
