//! BERT (`BertModel`, `BertForSequenceClassification`): the ms-marco MiniLM
//! cross-encoders and all-MiniLM-L6-v2. Its encoder and config are shared
//! with XLM-R.

use burn::tensor::{Device, Tensor, activation};
use serde::Deserialize;

use crate::error::{Error, Result, bounds, check_config_positive, check_config_range};
use crate::nn::{Activation, AttentionPlan, Embedding, LayerNorm, Linear, Packing, packed_attention};
use crate::tokenize::Encoded;
use super::Labels;
use crate::weights::Weights;

/// The fields of a BERT / RoBERTa / XLM-R `config.json` that matter for
/// inference. Unknown fields are ignored, as transformers does.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct EncoderConfig {
    pub(crate) vocab_size: usize,
    pub(crate) hidden_size: usize,
    pub(crate) num_hidden_layers: usize,
    pub(crate) num_attention_heads: usize,
    pub(crate) intermediate_size: usize,
    #[serde(default = "default_act")]
    pub(crate) hidden_act: Activation,
    pub(crate) max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub(crate) type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub(crate) layer_norm_eps: f64,
    #[serde(default)]
    pub(crate) pad_token_id: Option<u32>,
    #[serde(default = "default_position_embedding_type")]
    pub(crate) position_embedding_type: String,
    #[serde(flatten)]
    pub(crate) labels: Labels,
}

fn default_act() -> Activation {
    Activation::Gelu
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_position_embedding_type() -> String {
    "absolute".into()
}

impl EncoderConfig {
    /// Parse and validate `config.json` bytes.
    pub(crate) fn from_json(bytes: &[u8]) -> Result<Self> {
        let cfg: EncoderConfig = serde_json::from_slice(bytes).map_err(|e| Error::config("config.json", e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config("config.json", m));
        check_config_range("hidden_size", self.hidden_size, 1, bounds::HIDDEN)?;
        check_config_range("num_attention_heads", self.num_attention_heads, 1, bounds::HEADS)?;
        check_config_range("num_hidden_layers", self.num_hidden_layers, 1, bounds::LAYERS)?;
        check_config_range("intermediate_size", self.intermediate_size, 1, bounds::INTERMEDIATE)?;
        check_config_range("vocab_size", self.vocab_size, 1, bounds::VOCAB)?;
        check_config_range("max_position_embeddings", self.max_position_embeddings, 1, bounds::POSITIONS)?;
        check_config_range("type_vocab_size", self.type_vocab_size, 1, bounds::TYPE_VOCAB)?;
        check_config_positive("layer_norm_eps", self.layer_norm_eps, 1.0)?;
        if self.hidden_size % self.num_attention_heads != 0 {
            return bad(format!("hidden_size {} is not a multiple of num_attention_heads {}", self.hidden_size, self.num_attention_heads));
        }
        if self.position_embedding_type != "absolute" {
            return bad(format!("position_embedding_type {:?} is not supported (only \"absolute\")", self.position_embedding_type));
        }
        if let Some(n) = self.labels.num_labels {
            check_config_range("num_labels", n, 1, bounds::VOCAB)?;
        }
        Ok(())
    }

    /// `num_labels` as transformers derives it ([`Labels::count`]).
    pub(crate) fn num_labels(&self) -> usize {
        self.labels.count()
    }
}

/// A batch as the encoder layers consume it: packed tokens (no padding, see
/// [`Packing`]), their ids on the host (the embedding tables may be chunked).
pub(crate) struct EncoderInput {
    /// Token ids, packed.
    pub(crate) ids: Vec<i64>,
    /// Segment ids, packed.
    pub(crate) token_types: Vec<i64>,
    /// Position ids, packed.
    pub(crate) positions: Vec<i64>,
    pub(crate) packing: Packing,
}

impl EncoderInput {
    /// From unpadded sequences, with each sequence's position ids computed
    /// from its token ids by `positions`; segment ids as tokenized, or all
    /// zero without `token_types`.
    pub(crate) fn new(items: &[&Encoded], positions: impl Fn(&[u32]) -> Vec<i64>, token_types: bool) -> Self {
        let lens: Vec<usize> = items.iter().map(|e| e.len()).collect();
        let packing = Packing::new(&lens);
        let flat = |f: &dyn Fn(&Encoded) -> Vec<i64>| packing.fill(items.iter().flat_map(|e| f(e)).collect());
        Self {
            ids: flat(&|e| e.ids.iter().map(|&x| i64::from(x)).collect()),
            token_types: flat(&|e| {
                if token_types { e.type_ids.iter().map(|&x| i64::from(x)).collect() } else { vec![0; e.len()] }
            }),
            positions: flat(&|e| positions(&e.ids)),
            packing,
        }
    }
}

/// Word + position + token-type embeddings, then LayerNorm.
pub(crate) struct BertEmbeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
}

impl BertEmbeddings {
    pub(crate) fn load(w: &Weights, p: &str, c: &EncoderConfig, dev: &Device) -> Result<Self> {
        let h = c.hidden_size;
        Ok(Self {
            word: Embedding::load(w, &format!("{p}embeddings.word_embeddings.weight"), c.vocab_size, h, dev)?,
            position: Embedding::load(w, &format!("{p}embeddings.position_embeddings.weight"), c.max_position_embeddings, h, dev)?,
            token_type: Embedding::load(w, &format!("{p}embeddings.token_type_embeddings.weight"), c.type_vocab_size, h, dev)?,
            norm: LayerNorm::load(w, &format!("{p}embeddings.LayerNorm"), h, c.layer_norm_eps, dev)?,
        })
    }

    /// `[packed tokens, hidden]`.
    pub(crate) fn forward(&self, x: &EncoderInput, dev: &Device) -> Tensor<2> {
        let e = self.word.forward(&x.ids, dev) + self.position.forward(&x.positions, dev) + self.token_type.forward(&x.token_types, dev);
        self.norm.forward(e)
    }
}

/// One post-LayerNorm transformer block.
pub(crate) struct BertLayer {
    /// query | key | value as one projection.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
    act: Activation,
}

impl BertLayer {
    pub(crate) fn load(w: &Weights, p: &str, c: &EncoderConfig, dev: &Device) -> Result<Self> {
        let (h, i, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        Ok(Self {
            qkv: Linear::load_concat(w, &["query", "key", "value"].map(|n| format!("{p}.attention.self.{n}")), h, h, dev)?,
            attn_out: Linear::load(w, &format!("{p}.attention.output.dense"), h, h, dev)?,
            attn_norm: LayerNorm::load(w, &format!("{p}.attention.output.LayerNorm"), h, eps, dev)?,
            intermediate: Linear::load(w, &format!("{p}.intermediate.dense"), h, i, dev)?,
            output: Linear::load(w, &format!("{p}.output.dense"), i, h, dev)?,
            out_norm: LayerNorm::load(w, &format!("{p}.output.LayerNorm"), h, eps, dev)?,
            act: c.hidden_act,
        })
    }

    /// `[packed tokens, hidden]` in and out.
    pub(crate) fn forward(&self, x: Tensor<2>, attention: &AttentionPlan) -> Tensor<2> {
        let ctx = packed_attention(self.qkv.forward(x.clone()), attention);
        let x = self.attn_norm.forward(self.attn_out.forward(ctx) + x);
        let ff = self.output.forward(self.act.forward(self.intermediate.forward(x.clone())));
        self.out_norm.forward(ff + x)
    }
}

/// Embeddings + the stack of layers: packed tokens → `[packed, hidden]`.
pub(crate) struct BertEncoder {
    embeddings: BertEmbeddings,
    layers: Vec<BertLayer>,
    heads: usize,
    max_positions: usize,
}

impl BertEncoder {
    /// Load under `prefix` (`"bert."`, `"roberta."` or `""`).
    pub(crate) fn load(w: &Weights, prefix: &str, c: &EncoderConfig, dev: &Device) -> Result<Self> {
        let layers = (0..c.num_hidden_layers)
            .map(|i| BertLayer::load(w, &format!("{prefix}encoder.layer.{i}"), c, dev))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embeddings: BertEmbeddings::load(w, prefix, c, dev)?,
            layers,
            heads: c.num_attention_heads,
            max_positions: c.max_position_embeddings,
        })
    }

    pub(crate) fn forward(&self, input: &EncoderInput, dev: &Device) -> Tensor<2> {
        let mut x = self.embeddings.forward(input, dev);
        let attention = input.packing.attention(self.heads, None, dev);
        for layer in &self.layers {
            x = layer.forward(x, &attention);
        }
        x
    }

    /// Reject position ids past the embedding table instead of indexing out
    /// of bounds on the device.
    pub(crate) fn check_positions(&self, positions: &[i64]) -> Result<()> {
        match positions.iter().max() {
            Some(&m) if m as usize >= self.max_positions => Err(Error::InvalidInput(format!(
                "a sequence needs position {m} but the model has {} position embeddings; lower max_length",
                self.max_positions
            ))),
            _ => Ok(()),
        }
    }
}

/// The prefix under which a BERT checkpoint stores its encoder.
pub(crate) fn bert_prefix(w: &Weights) -> &'static str {
    if w.contains("bert.embeddings.word_embeddings.weight") { "bert." } else { "" }
}

/// BERT position ids: `0..len` for every sequence.
fn positions(ids: &[u32]) -> Vec<i64> {
    (0..ids.len() as i64).collect()
}

/// `BertForSequenceClassification`: pooler (`tanh(W h_cls + b)`) then a
/// linear classifier.
pub(crate) struct BertForSequenceClassification {
    encoder: BertEncoder,
    pooler: Linear,
    classifier: Linear,
}

impl BertForSequenceClassification {
    pub(crate) fn load(w: &Weights, c: &EncoderConfig, dev: &Device) -> Result<Self> {
        let h = c.hidden_size;
        Ok(Self {
            encoder: BertEncoder::load(w, "bert.", c, dev)?,
            pooler: Linear::load(w, "bert.pooler.dense", h, h, dev)?,
            classifier: Linear::load(w, "classifier", h, c.num_labels(), dev)?,
        })
    }

    /// `[batch, num_labels]` logits.
    pub(crate) fn forward(&self, items: &[&Encoded], dev: &Device) -> Result<Tensor<2>> {
        let input = EncoderInput::new(items, positions, true);
        self.encoder.check_positions(&input.positions)?;
        let cls = self.encoder.forward(&input, dev).select(0, input.packing.first_tokens(dev));
        let pooled = activation::tanh(self.pooler.forward(cls));
        Ok(self.classifier.forward(pooled))
    }
}

/// A bare BERT encoder (`BertModel`) for embeddings.
pub(crate) struct BertModel {
    encoder: BertEncoder,
}

impl BertModel {
    pub(crate) fn load(w: &Weights, c: &EncoderConfig, dev: &Device) -> Result<Self> {
        Ok(Self { encoder: BertEncoder::load(w, bert_prefix(w), c, dev)? })
    }

    /// Last hidden states, packed (`[packed rows, hidden]`), and their packing.
    pub(crate) fn forward(&self, items: &[&Encoded], dev: &Device) -> Result<(Tensor<2>, Packing)> {
        let input = EncoderInput::new(items, positions, true);
        self.encoder.check_positions(&input.positions)?;
        Ok((self.encoder.forward(&input, dev), input.packing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(extra: &str) -> String {
        format!(
            r#"{{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
                "num_attention_heads": 2, "intermediate_size": 16,
                "max_position_embeddings": 20 {extra}}}"#
        )
    }

    #[test]
    fn reads_labels_and_defaults_like_transformers() {
        let c = EncoderConfig::from_json(
            base(r#","architectures":["XLMRobertaForSequenceClassification"],"id2label":{"0":"LABEL_0"}"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(c.num_labels(), 1);
        let c = EncoderConfig::from_json(base(r#","model_type":"bert""#).as_bytes()).unwrap();
        assert_eq!(c.num_labels(), 2);
        assert_eq!(c.hidden_act, Activation::Gelu);
    }

    #[test]
    fn rejects_bad_shapes() {
        let e =
            EncoderConfig::from_json(base("").replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3").as_bytes()).unwrap_err();
        assert!(e.to_string().contains("not a multiple"), "{e}");
        let e = EncoderConfig::from_json(b"{not json").unwrap_err();
        assert!(matches!(e, Error::Config { .. }), "{e}");
    }
}
