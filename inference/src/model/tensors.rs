//! The tensors of a mapped GGUF: weight matrices read in place, norm weights copied out.

use candle_core::quantized::gguf_file::{Content, TensorInfo};
use candle_core::quantized::GgmlDType;

use crate::kernels::{self, WeightType};
use crate::InferenceError;

/// The formats Wick's kernels compute in, by GGUF tensor type.
pub(crate) fn weight_type(dtype: GgmlDType) -> Option<WeightType> {
    match dtype {
        GgmlDType::Q4_1 => Some(WeightType::Q4_1),
        GgmlDType::Q8_0 => Some(WeightType::Q8_0),
        GgmlDType::Q5_0 => Some(WeightType::Q5_0),
        GgmlDType::Q4K => Some(WeightType::Q4K),
        GgmlDType::Q6K => Some(WeightType::Q6K),
        _ => None,
    }
}

/// A matrix of `rows` quantized rows of `cols` values, inside the mapped file.
pub(crate) struct Matrix {
    pub(crate) ty: WeightType,
    offset: usize,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
}

impl Matrix {
    pub(crate) fn row_bytes(&self) -> usize {
        self.ty.row_bytes(self.cols)
    }

    pub(crate) fn bytes<'a>(&self, map: &'a [u8]) -> &'a [u8] {
        &map[self.offset..self.offset + self.rows * self.row_bytes()]
    }

    /// Row `id` expanded to f32 (an embedding lookup).
    pub(crate) fn dequantize_row(
        &self,
        map: &[u8],
        id: usize,
        out: &mut [f32],
    ) -> Result<(), InferenceError> {
        if id >= self.rows {
            return Err(InferenceError::TokenOutOfRange(id));
        }
        let row = &self.bytes(map)[id * self.row_bytes()..(id + 1) * self.row_bytes()];
        kernels::dequantize_row(self.ty, row, out);
        Ok(())
    }
}

/// The tensors of a mapped GGUF, found by name through its header.
pub(crate) struct TensorFile<'a> {
    pub(crate) content: &'a Content,
    pub(crate) map: &'a [u8],
}

impl TensorFile<'_> {
    pub(crate) fn info(&self, name: &str) -> Result<&TensorInfo, InferenceError> {
        self.content
            .tensor_infos
            .get(name)
            .ok_or_else(|| InferenceError::MissingMetadata(format!("tensor {name}")))
    }

    /// A matrix in one of the formats of Wick's kernels ([`weight_type`]), read in place.
    pub(crate) fn matrix(&self, name: &str) -> Result<Matrix, InferenceError> {
        let info = self.info(name)?;
        let dims = info.shape.dims();
        let ty = weight_type(info.ggml_dtype).ok_or_else(|| {
            InferenceError::Unsupported(format!("{name} is {:?}", info.ggml_dtype))
        })?;
        // llama.cpp computes such Q4_K matrices in another order (see the type).
        let ty = if ty == WeightType::Q4K && dims[0] % 8 == 0 {
            WeightType::Q4KRows8
        } else {
            ty
        };
        let m = Matrix {
            ty,
            offset: self.content.tensor_data_offset as usize + info.offset as usize,
            rows: dims[0],
            cols: dims[1],
        };
        if !m.cols.is_multiple_of(ty.block_len())
            || m.offset + m.rows * m.row_bytes() > self.map.len()
        {
            return Err(InferenceError::BadMetadata(
                format!("tensor {name}"),
                "its size does not fit the file".into(),
            ));
        }
        Ok(m)
    }

    /// An f32 vector (a norm's weights), copied out.
    pub(crate) fn vector(&self, name: &str) -> Result<Vec<f32>, InferenceError> {
        let info = self.info(name)?;
        let start = self.content.tensor_data_offset as usize + info.offset as usize;
        let n = info.shape.elem_count();
        let bytes = self.map.get(start..start + 4 * n).ok_or_else(|| {
            InferenceError::BadMetadata(format!("tensor {name}"), "past the end of the file".into())
        })?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// The output matrix; files with tied embeddings have none, and the
    /// embedding table serves as the output.
    pub(crate) fn output(&self) -> Result<Matrix, InferenceError> {
        if self.content.tensor_infos.contains_key("output.weight") {
            self.matrix("output.weight")
        } else {
            self.matrix("token_embd.weight")
        }
    }
}
