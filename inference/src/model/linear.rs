//! Matrix products: quantized activations times weight matrices, in parallel
//! on the model's threads, with Wick's kernels or (for the formats those do
//! not have) candle's.

use std::fs::File;
use std::ops::Range;

use candle_core::quantized::QMatMul;
use candle_core::{Device, Module, Tensor};

use super::tensors::{weight_type, Matrix, TensorFile};
use super::{Cpu, OutPtr};
use crate::kernels::{Activations, Kernels, WeightType};
use crate::InferenceError;

/// A weight matrix: read in place by Wick's kernels, or held by candle.
pub(crate) enum Linear {
    Native(Matrix),
    Candle(QMatMul),
}

impl Linear {
    /// The tensor `name`: in place if Wick's kernels have its format, else read by candle.
    pub(crate) fn load(
        file: &TensorFile,
        reader: &mut File,
        name: &str,
    ) -> Result<Self, InferenceError> {
        let info = file.info(name)?;
        if weight_type(info.ggml_dtype).is_some() {
            return Ok(Self::Native(file.matrix(name)?));
        }
        let tensor = file.content.tensor(reader, name, &Device::Cpu)?;
        Ok(Self::Candle(QMatMul::from_qtensor(tensor)?))
    }

    /// `x` is the rows of a batch's segments (`lengths` rows each) of `cols`
    /// values; the result is as many rows of this matrix's rows.
    pub(crate) fn forward(
        &self,
        cpu: &mut Cpu,
        map: &[u8],
        x: &[f32],
        lengths: &[usize],
        cols: usize,
    ) -> Result<Vec<f32>, InferenceError> {
        let n: usize = lengths.iter().sum();
        match self {
            Self::Native(m) => {
                let a = cpu
                    .kernels
                    .quantize(m.ty.activation_type(), x, n, cols)
                    .grouped(lengths);
                let mut out = vec![0f32; n * m.rows];
                matmuls(cpu, map, &mut [Job::new(m, &a, &mut out)]);
                Ok(out)
            }
            Self::Candle(q) => {
                let t = Tensor::from_slice(x, (n, cols), &Device::Cpu)?;
                Ok(q.forward(&t)?.flatten_all()?.to_vec1()?)
            }
        }
    }
}

/// Several matrices applied to the same input `x` (q, k and v; gate and up):
/// the input quantized once for each activation format they take, and the
/// products run as one parallel step. (A matrix held by candle is applied on
/// its own.) The results are those of each matrix's own [`Linear::forward`].
pub(crate) fn forward_many(
    cpu: &mut Cpu,
    map: &[u8],
    linears: &[&Linear],
    x: &[f32],
    lengths: &[usize],
    cols: usize,
) -> Result<Vec<Vec<f32>>, InferenceError> {
    let natives: Option<Vec<&Matrix>> = linears
        .iter()
        .map(|l| match l {
            Linear::Native(m) => Some(m),
            Linear::Candle(_) => None,
        })
        .collect();
    let Some(natives) = natives else {
        return linears
            .iter()
            .map(|l| l.forward(cpu, map, x, lengths, cols))
            .collect();
    };
    let n: usize = lengths.iter().sum();
    let types: Vec<WeightType> = natives.iter().map(|m| m.ty).collect();
    let acts = quantized_for(cpu.kernels, types[0], &types[1..], x, lengths, cols);
    let mut outs: Vec<Vec<f32>> = natives.iter().map(|m| vec![0f32; n * m.rows]).collect();
    let mut jobs: Vec<Job> = natives
        .iter()
        .zip(outs.iter_mut())
        .map(|(m, out)| Job::new(m, find(&acts, m), out))
        .collect();
    matmuls(cpu, map, &mut jobs);
    drop(jobs);
    Ok(outs)
}

/// Activations quantized for `w`, and for `others` too when they need
/// another format; `x` holds the rows of a batch's segments, `lengths` rows each.
pub(crate) fn quantized_for(
    isa: Kernels,
    w: WeightType,
    others: &[WeightType],
    x: &[f32],
    lengths: &[usize],
    cols: usize,
) -> Vec<Activations> {
    let rows = lengths.iter().sum();
    let mut out: Vec<Activations> = Vec::new();
    for ty in std::iter::once(w).chain(others.iter().copied()) {
        let at = ty.activation_type();
        if !out.iter().any(|a| a.ty() == at) {
            out.push(isa.quantize(at, x, rows, cols).grouped(lengths));
        }
    }
    out
}

/// The activations among `acts` in the format `w` takes.
pub(crate) fn find<'a>(acts: &'a [Activations], w: &Matrix) -> &'a Activations {
    let at = w.ty.activation_type();
    acts.iter()
        .find(|a| a.ty() == at)
        .expect("quantized for every weight type")
}

/// One matrix product: `out[token][row] = weights[row] · activations[token]`.
pub(crate) struct Job<'a> {
    w: &'a Matrix,
    x: &'a Activations,
    /// The output, `x.rows() × w.rows` values, borrowed mutably for `'a`.
    out: OutPtr,
}

impl<'a> Job<'a> {
    pub(crate) fn new(w: &'a Matrix, x: &'a Activations, out: &'a mut [f32]) -> Self {
        assert_eq!(out.len(), x.rows() * w.rows);
        Self {
            w,
            x,
            out: OutPtr::new(out),
        }
    }
}

/// Runs the products together, split into chunks of rows over the model's
/// threads (q, k and v, or gate and up, in one parallel step).
pub(crate) fn matmuls(cpu: &mut Cpu, map: &[u8], jobs: &mut [Job]) {
    // A few chunks per thread: enough to even out, few enough that taking
    // the next chunk (an atomic shared by the threads) costs nothing.
    let total: usize = jobs.iter().map(|j| j.w.rows).sum();
    // A multiple of four rows: the tiled kernels take weight rows four at a time.
    let chunk = total
        .div_ceil(4 * cpu.team.size())
        .next_multiple_of(4)
        .max(4);
    let tasks: Vec<(usize, Range<usize>)> = jobs
        .iter()
        .enumerate()
        .flat_map(|(j, job)| {
            (0..job.w.rows)
                .step_by(chunk)
                .map(move |r| (j, r..(r + chunk).min(job.w.rows)))
        })
        .collect();
    let jobs = &*jobs;
    let isa = cpu.kernels;
    cpu.team.run(tasks.len(), &|i| {
        let (j, rows) = tasks[i].clone();
        let job = &jobs[j];
        // SAFETY: `Job::new` checked that `out` holds tokens × rows values
        // and holds its mutable borrow; each task writes only the rows of
        // its own chunk, so no two tasks write the same value.
        unsafe {
            isa.matmul_rows(
                job.w.ty,
                job.w.bytes(map),
                job.w.row_bytes(),
                rows,
                job.x,
                job.out.at(0),
                job.w.rows,
            )
        };
    });
}
