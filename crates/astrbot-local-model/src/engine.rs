//! Loading the GGUF model into candle and running token generation on the CPU.

use std::io::Cursor;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::{ModelWeights, MAX_SEQ_LEN};
use candle_transformers::utils::apply_repeat_penalty;

use crate::tokenizer::Tokenizer;

/// Tokens that end an answer: ChatML's end of turn and the end of text.
const STOP_TOKENS: [&str; 2] = ["<|im_end|>", "<|endoftext|>"];
/// Fixed so the demo answers the same question the same way.
const SEED: u64 = 299_792_458;
const TEMPERATURE: f64 = 0.7;
const TOP_K: usize = 40;
const TOP_P: f64 = 0.9;
/// A light penalty: a 135M model loops easily, a strong one garbles text.
const REPEAT_PENALTY: f32 = 1.1;
const REPEAT_WINDOW: usize = 64;

/// The longest sequence (prompt plus answer) the model's rotary table covers.
pub const MAX_SEQUENCE: usize = MAX_SEQ_LEN;

/// A GGUF chat model loaded once and shared; one generation runs at a time.
pub struct LocalModel {
    tokenizer: Tokenizer,
    /// The weights hold the KV cache, so generations take turns on this lock.
    weights: Mutex<ModelWeights>,
    stop_ids: Vec<u32>,
    device: Device,
}

/// Counts from one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
}

impl LocalModel {
    /// Loads a llama-architecture GGUF file, converting its quantised tensors
    /// to the format candle runs fastest in this build (Q8_0 with SIMD, else F32).
    pub fn load(path: &Path) -> anyhow::Result<LocalModel> {
        let device = Device::Cpu;
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the model file {}", path.display()))?;
        let mut reader = Cursor::new(bytes);
        let content = gguf_file::Content::read(&mut reader)
            .with_context(|| format!("{} is not a GGUF file", path.display()))?;
        let tokenizer = Tokenizer::from_gguf(&content)?;
        let requantised = requantise(&content, &mut reader, &device)?;
        drop(reader);
        let mut reader = Cursor::new(requantised);
        let content = gguf_file::Content::read(&mut reader)?;
        let weights = ModelWeights::from_gguf(content, &mut reader, &device)
            .context("cannot build the llama model from the GGUF tensors")?;
        let stop_ids = STOP_TOKENS
            .iter()
            .filter_map(|token| tokenizer.token_id(token))
            .collect();
        Ok(LocalModel {
            tokenizer,
            weights: Mutex::new(weights),
            stop_ids,
            device,
        })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Generates up to `max_new_tokens` after `prompt`, handing each token's
    /// bytes to `on_token`; it returns `false` to stop early. Blocks the thread
    /// (and waits for any other generation), so call it off the async runtime.
    pub fn generate(
        &self,
        prompt: &[u32],
        max_new_tokens: usize,
        mut on_token: impl FnMut(&[u8]) -> bool,
    ) -> anyhow::Result<GenerationStats> {
        anyhow::ensure!(!prompt.is_empty(), "the prompt is empty");
        anyhow::ensure!(
            prompt.len() < MAX_SEQUENCE,
            "the prompt has {} tokens; the model takes at most {MAX_SEQUENCE}",
            prompt.len()
        );
        let max_new_tokens = max_new_tokens.min(MAX_SEQUENCE - prompt.len());
        // A panic in an earlier generation poisons the lock; the weights are
        // still sound because the KV cache is reset by the next prompt.
        let mut weights = self
            .weights
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let sampling = Sampling::TopKThenTopP {
            k: TOP_K,
            p: TOP_P,
            temperature: TEMPERATURE,
        };
        let mut sampler = LogitsProcessor::from_sampling(SEED, sampling);
        let mut context = prompt.to_vec();
        let mut generated = 0;
        // Position 0 makes the model start a fresh KV cache.
        let mut input = Tensor::new(prompt, &self.device)?.unsqueeze(0)?;
        let mut position = 0;
        while generated < max_new_tokens {
            let logits = weights.forward(&input, position)?.squeeze(0)?;
            let recent = &context[context.len().saturating_sub(REPEAT_WINDOW)..];
            let logits = apply_repeat_penalty(&logits, REPEAT_PENALTY, recent)?;
            let next = sampler.sample(&logits)?;
            position += input.dim(1)?;
            if self.stop_ids.contains(&next) {
                break;
            }
            generated += 1;
            context.push(next);
            if !on_token(&self.tokenizer.token_bytes(next)) {
                break;
            }
            input = Tensor::new(&[next], &self.device)?.unsqueeze(0)?;
        }
        Ok(GenerationStats {
            prompt_tokens: prompt.len(),
            generated_tokens: generated,
        })
    }
}

/// The weight format candle multiplies fastest in this build. Its quantised
/// kernels pick SIMD at compile time (`-C target-cpu=native` or
/// `target-feature=+avx2,+fma`); without it they are scalar and far slower than
/// F32 weights, whose matmul (the `gemm` crate) detects SIMD at run time.
const FAST_DTYPE: GgmlDType = if cfg!(any(target_feature = "avx2", target_feature = "neon")) {
    GgmlDType::Q8_0
} else {
    GgmlDType::F32
};

/// Rewrites the model as an in-memory GGUF whose quantised tensors are in
/// [`FAST_DTYPE`] (candle's Q4_1 kernels are several times slower than its
/// Q8_0 ones); F32 tensors such as the norms and the `llama.*`
/// hyper-parameters are copied as they are. The tokenizer metadata is left
/// out: it is already parsed.
fn requantise(
    content: &gguf_file::Content,
    reader: &mut Cursor<Vec<u8>>,
    device: &Device,
) -> anyhow::Result<Vec<u8>> {
    let mut tensors: Vec<(&str, QTensor)> = Vec::with_capacity(content.tensor_infos.len());
    for name in content.tensor_infos.keys() {
        let tensor = content.tensor(reader, name, device)?;
        let keep = matches!(tensor.dtype(), GgmlDType::F32 | GgmlDType::F16)
            || tensor.dtype() == FAST_DTYPE;
        let tensor = if keep {
            tensor
        } else {
            QTensor::quantize(&tensor.dequantize(device)?, FAST_DTYPE)?
        };
        tensors.push((name.as_str(), tensor));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .filter(|(key, _)| key.starts_with("llama."))
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors
        .iter()
        .map(|(name, tensor)| (*name, tensor))
        .collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensor_refs)?;
    Ok(out.into_inner())
}
