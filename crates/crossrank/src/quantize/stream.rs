//! Quantizing a safetensors file while it downloads: bytes go in as they
//! arrive, in chunks of any size, and leave as the file `crossrank
//! quantize` would write for them — so loading an f32 checkpoint at q8 in
//! a browser holds the quantized weights plus one chunk (and a row), never
//! the f32 file. The npm package feeds every weights file of a checkpoint
//! it downloads through one of these when the load dtype is not f32.
//!
//! Each tensor gets [`super::step`]'s plan from the header alone (name,
//! dtype, shape). A quantized matrix is quantized a few whole rows at a
//! time as they arrive (blocks lie within rows); a kept tensor's bytes are
//! copied as they arrive; a tensor rounded to f16 is collected whole first
//! (a value out of f16's range keeps the whole tensor as it was, which is
//! known only at its end). The output's header is written last into room
//! reserved at the front (a safetensors header may end in spaces), so the
//! result is assembled in place, without a second copy.


use safetensors::tensor::{Dtype, TensorInfo};

use crate::header::info;

use super::{Step, half_bytes, metadata, part_bytes, quant_parts, quant_rows, step};
use crate::error::{Error, Result};
use crate::quant::WeightDtype;


/// A safetensors file quantized while it streams in: [`Self::push`] its
/// bytes in order, then [`Self::finish`]. Errors are typed and final: a
/// corrupt header, a file longer or shorter than its header says, or
/// memory that cannot be had.
pub struct StreamingQuantizer {
    file: String,
    dtype: WeightDtype,
    /// Bytes received and not yet consumed (less than one header, row or
    /// f16 tensor).
    pending: Vec<u8>,
    state: State,
}

enum State {
    /// Before the 8-byte header length and the header.
    Header,
    Data(Box<Data>),
    /// An error was returned: the stream is over.
    Failed,
}

/// One input tensor and what it becomes.
struct Planned {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Bytes in the input.
    len: usize,
    step: Step,
}

struct Data {
    tensors: Vec<Planned>,
    /// The tensor being received, and how many of its bytes were consumed.
    current: usize,
    consumed: usize,
    /// Where the current tensor's output starts in `out`, and for a
    /// quantized one where its scales start.
    started: usize,
    scales_at: usize,
    /// Whether the current tensor's output was begun (`started` set).
    begun: bool,
    /// The dtype the current f16-planned tensor was written in (F16, or
    /// as stored when a value did not fit).
    half_dtype: Dtype,
    /// The output file: `room` bytes for the length and header, then data.
    out: Vec<u8>,
    room: usize,
    /// Output tensors written so far (name, info with offsets in the data).
    infos: Vec<(String, TensorInfo)>,
}

impl StreamingQuantizer {
    /// Quantize the weights file `file` (named in errors) as `dtype`:
    /// f16, q8, q4 or q4-all.
    pub fn new(file: impl Into<String>, dtype: WeightDtype) -> Result<Self> {
        if dtype == WeightDtype::F32 {
            return Err(Error::InvalidInput("streaming quantization writes f16, q8, q4 or q4-all, not f32".into()));
        }
        Ok(Self { file: file.into(), dtype, pending: Vec::new(), state: State::Header })
    }

    fn bad(&self, message: impl Into<String>) -> Error {
        Error::Safetensors { file: self.file.clone(), message: message.into() }
    }

    /// The next bytes of the file.
    pub fn push(&mut self, bytes: &[u8]) -> Result<()> {
        let result = self.push_inner(bytes);
        if result.is_err() {
            self.state = State::Failed;
            self.pending = Vec::new();
        }
        result
    }

    fn push_inner(&mut self, bytes: &[u8]) -> Result<()> {
        if matches!(self.state, State::Failed) {
            return Err(self.bad("an earlier chunk failed; start again"));
        }
        if self.pending.is_empty() {
            // The common case: consumed where it lies; what is left (part of
            // a row, a header, an f16 tensor) waits in `pending`.
            let used = self.consume(bytes)?;
            self.wait(&bytes[used..])
        } else {
            // Grown in place to what the unit waited for needs (not doubled:
            // an f16 tensor may be hundreds of megabytes), then consumed.
            let want = self.waiting_for().max(self.pending.len() + bytes.len());
            let mut pending = std::mem::take(&mut self.pending);
            pending.try_reserve_exact(want - pending.len()).map_err(|_| self.oom(want))?;
            pending.extend_from_slice(bytes);
            let used = self.consume(&pending)?;
            pending.drain(..used);
            self.pending = pending;
            Ok(())
        }
    }

    /// Keep `rest` (nothing is pending) until more bytes arrive.
    fn wait(&mut self, rest: &[u8]) -> Result<()> {
        let want = self.waiting_for().max(rest.len());
        let mut pending = Vec::new();
        pending.try_reserve_exact(want).map_err(|_| self.oom(want))?;
        pending.extend_from_slice(rest);
        self.pending = pending;
        Ok(())
    }

    /// How many bytes the unit being waited for needs: the header, an f16
    /// tensor, a row of a quantized one (0 when unknown yet).
    fn waiting_for(&self) -> usize {
        match &self.state {
            State::Header => crate::header::json_len(&self.pending).map_or(0, |n| (n.min(crate::header::MAX_HEADER) as usize).saturating_add(8)),
            State::Data(d) => match d.tensors.get(d.current) {
                Some(Planned { step: Step::Half, len, .. }) => len - d.consumed,
                Some(Planned { step: Step::Quant { .. }, dtype, shape, .. }) => shape[1] * dtype.bitsize() / 8,
                _ => 0,
            },
            State::Failed => 0,
        }
    }

    fn oom(&self, bytes: usize) -> Error {
        self.bad(format!("out of memory: cannot hold {bytes} bytes while quantizing"))
    }

    /// Consume what can be of `input`; returns how many bytes.
    fn consume(&mut self, input: &[u8]) -> Result<usize> {
        let mut at = 0;
        if matches!(self.state, State::Header) {
            let header = crate::header::read(input)
                .map_err(|e| self.bad(format!("not a safetensors file or a corrupt header ({e})")))?;
            let Some(header) = header else { return Ok(0) };
            at = 8 + header.json_len;
            self.state = State::Data(Box::new(self.plan(header)?));
        }
        let State::Data(data) = &mut self.state else { unreachable!("the header was read above") };
        while data.current < data.tensors.len() {
            let n = data.take(&input[at..], &self.file)?;
            at += n;
            if data.consumed < data.tensors[data.current].len {
                break; // waiting for more bytes
            }
            data.end_tensor();
        }
        if at < input.len() && data.current == data.tensors.len() {
            return Err(self.bad("more bytes than its header describes"));
        }
        Ok(at)
    }

    /// Each tensor's plan, and the output's header room.
    fn plan(&self, header: crate::header::Header) -> Result<Data> {
        let mut tensors = Vec::with_capacity(header.tensors.len());
        // The output header with the widest numbers it can hold: its size
        // bounds the real header's.
        let mut widest = Vec::new();
        let mut widen = |name: &str, dt: Dtype, shape: &[usize]| widest.push((name.to_string(), info(dt, shape, (usize::MAX, usize::MAX))));
        for (name, t) in header.tensors {
            let len = t.data_offsets.1 - t.data_offsets.0;
            // The scales of a crossrank-quantized tensor (F16, rank 2) stay
            // as stored, whichever shard holds their packed words (which,
            // U32, stay anyway).
            let part_of_quantized = name.ends_with(".qscale");
            let step = step(&name, t.dtype, &t.shape, self.dtype, part_of_quantized);
            match step {
                Step::Keep => widen(&name, t.dtype, &t.shape),
                // "BF16" is the longest dtype name a fallback keeps.
                Step::Half => widen(&name, Dtype::BF16, &t.shape),
                Step::Quant { bits, block } => {
                    for (n, d, s) in quant_parts(&name, t.shape[0], t.shape[1], bits, block) {
                        widen(&n, d, &s);
                    }
                }
            }
            tensors.push(Planned { name, dtype: t.dtype, shape: t.shape, len, step });
        }
        let header = crate::header::write(&widest, &metadata(self.dtype)).len();
        let room = (8 + header).next_multiple_of(8);
        // The whole output at once (a growing Vec would double its capacity
        // and copy, peaking near twice the quantized size): exact but for
        // an f16-planned tensor that keeps its dtype (a value out of f16's
        // range), which grows it then.
        let size: usize = tensors
            .iter()
            .map(|t| match t.step {
                Step::Keep => t.len,
                Step::Half => t.len / (t.dtype.bitsize() / 8).max(1) * 2,
                Step::Quant { bits, block } => {
                    quant_parts(&t.name, t.shape[0], t.shape[1], bits, block).iter().map(|(_, d, s)| part_bytes(*d, s)).sum()
                }
            })
            .sum();
        let mut out = Vec::new();
        out.try_reserve_exact(room + size).map_err(|_| self.oom(room + size))?;
        out.resize(room, b' ');
        Ok(Data { tensors, current: 0, consumed: 0, started: room, scales_at: room, begun: false, half_dtype: Dtype::F16, out, room, infos: Vec::new() })
    }

    /// The quantized file, once every byte the header describes arrived.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        let incomplete = match &self.state {
            State::Failed => return Err(self.bad("an earlier chunk failed; start again")),
            State::Header => true,
            State::Data(d) => d.current < d.tensors.len(),
        };
        if incomplete || !self.pending.is_empty() {
            return Err(self.bad("truncated file: it ended before the data its header describes"));
        }
        let State::Data(data) = std::mem::replace(&mut self.state, State::Failed) else { unreachable!("checked above") };
        let Data { mut out, room, infos, .. } = *data;
        let header = crate::header::write(&infos, &metadata(self.dtype));
        // The room was sized for the widest numbers, so the header fits.
        if 8 + header.len() > room {
            return Err(self.bad(format!("the quantized header needs {} bytes, {room} were reserved", 8 + header.len())));
        }
        out[..8].copy_from_slice(&((room - 8) as u64).to_le_bytes());
        out[8..8 + header.len()].copy_from_slice(&header);
        Ok(out)
    }
}

/// Reserve `extra` more bytes, or a typed error (a wasm32 page has 4 GiB
/// at most; a `Vec` 2 GiB).
fn reserve(v: &mut Vec<u8>, extra: usize, file: &str) -> Result<()> {
    v.try_reserve(extra).map_err(|_| Error::Safetensors {
        file: file.to_string(),
        message: format!("out of memory: cannot hold {} more bytes of the quantized file", extra),
    })
}

impl Data {
    /// Consume what can be of `input` for the current tensor.
    fn take(&mut self, input: &[u8], file: &str) -> Result<usize> {
        let t = &self.tensors[self.current];
        let need = t.len - self.consumed;
        if !self.begun {
            self.begun = true;
            self.started = self.out.len();
            if let Step::Quant { bits, block } = t.step {
                // The tensor's whole output, filled in as its rows arrive.
                let [(_, pd, ps), (_, sd, ss)] = quant_parts(&t.name, t.shape[0], t.shape[1], bits, block);
                let (packed, scales) = (part_bytes(pd, &ps), part_bytes(sd, &ss));
                reserve(&mut self.out, packed + scales, file)?;
                self.scales_at = self.out.len() + packed;
                self.out.resize(self.out.len() + packed + scales, 0);
            }
        }
        if need == 0 {
            return Ok(0);
        }
        match t.step {
            Step::Keep => {
                let n = need.min(input.len());
                reserve(&mut self.out, n, file)?;
                self.out.extend_from_slice(&input[..n]);
                self.consumed += n;
                Ok(n)
            }
            // Collected whole: rounded to f16 at its end, or kept.
            Step::Half => {
                let Some(raw) = input.get(..need) else { return Ok(0) };
                let (bytes, dtype) = match half_bytes(&t.name, t.dtype, raw)? {
                    Some(h) => (h, Dtype::F16),
                    None => (raw.to_vec(), t.dtype),
                };
                reserve(&mut self.out, bytes.len(), file)?;
                self.out.extend_from_slice(&bytes);
                self.half_dtype = dtype;
                self.consumed = t.len;
                Ok(need)
            }
            Step::Quant { bits, block } => {
                let cols = t.shape[1];
                let row_bytes = cols * t.dtype.bitsize() / 8;
                let rows = need.min(input.len()) / row_bytes;
                if rows == 0 {
                    return Ok(0);
                }
                let (row_words, row_scales) = (cols * bits as usize / 32 * 4, cols / block * 2);
                let done = self.consumed / row_bytes;
                let (packed, scales) = quant_rows(&t.name, t.dtype, &input[..rows * row_bytes], rows, cols, bits, block)?;
                let (p, s) = (self.started + done * row_words, self.scales_at + done * row_scales);
                self.out[p..p + packed.len()].copy_from_slice(&packed);
                self.out[s..s + scales.len()].copy_from_slice(&scales);
                self.consumed += rows * row_bytes;
                Ok(rows * row_bytes)
            }
        }
    }

    /// The current tensor is complete: record its output, go to the next.
    fn end_tensor(&mut self) {
        let t = &self.tensors[self.current];
        let (start, end) = (self.started - self.room, self.out.len() - self.room);
        match t.step {
            Step::Keep => self.infos.push((t.name.clone(), info(t.dtype, &t.shape, (start, end)))),
            Step::Half => self.infos.push((t.name.clone(), info(self.half_dtype, &t.shape, (start, end)))),
            Step::Quant { bits, block } => {
                let [(pn, pd, ps), (sn, sd, ss)] = quant_parts(&t.name, t.shape[0], t.shape[1], bits, block);
                let scales = self.scales_at - self.room;
                self.infos.push((pn, info(pd, &ps, (start, scales))));
                self.infos.push((sn, info(sd, &ss, (scales, end))));
            }
        }
        self.current += 1;
        self.consumed = 0;
        self.begun = false;
    }
}

#[cfg(test)]
mod tests {
    use safetensors::tensor::TensorView;

    use super::*;
    use crate::quantize::{encode, plan_tensor};
    use crate::weights::Weights;

    /// A file with every kind of tensor the plan treats differently: an
    /// encoder's embedding and projection (f32, bf16), a decoder's (f16),
    /// a matrix too small to quantize, a bias, integers, an empty tensor,
    /// a value f16 cannot hold, and a crossrank-quantized pair.
    fn sample() -> Vec<u8> {
        let f32s = |n: usize, big: bool| -> Vec<u8> {
            (0..n)
                .flat_map(|i| {
                    let v = if big && i == 5 { 1e6 } else { ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.1 };
                    v.to_le_bytes()
                })
                .collect()
        };
        let half = |n: usize, bf: bool| -> Vec<u8> {
            let v = f32s(n, false);
            v.chunks_exact(4)
                .flat_map(|c| {
                    let x = f32::from_le_bytes(c.try_into().unwrap());
                    if bf { half::bf16::from_f32(x).to_le_bytes() } else { half::f16::from_f32(x).to_le_bytes() }
                })
                .collect()
        };
        let tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
            ("roberta.embeddings.word_embeddings.weight", Dtype::F32, vec![40, 64], f32s(40 * 64, false)),
            ("roberta.encoder.layer.0.attention.self.query.weight", Dtype::F32, vec![32, 48], f32s(32 * 48, false)),
            ("roberta.encoder.layer.0.output.dense.weight", Dtype::BF16, vec![16, 32], half(16 * 32, true)),
            ("model.layers.0.mlp.up_proj.weight", Dtype::F16, vec![24, 64], half(24 * 64, false)),
            ("roberta.encoder.layer.0.intermediate.dense.weight", Dtype::F32, vec![16, 32], f32s(16 * 32, true)),
            ("classifier.out_proj.weight", Dtype::F32, vec![1, 32], f32s(32, false)),
            ("roberta.encoder.layer.0.output.dense.bias", Dtype::F32, vec![32], f32s(32, false)),
            ("roberta.embeddings.position_ids", Dtype::I64, vec![1, 8], (0..8i64).flat_map(|i| i.to_le_bytes()).collect()),
            ("empty.weight", Dtype::F32, vec![16, 0], Vec::new()),
            ("done.weight.q8", Dtype::U32, vec![16, 8], vec![7; 16 * 8 * 4]),
            ("done.weight.qscale", Dtype::F16, vec![16, 1], half(16, false)),
        ];
        let views: Vec<_> = tensors.iter().map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
        safetensors::serialize(views, None).unwrap()
    }

    fn stream(bytes: &[u8], dtype: WeightDtype, chunk: usize) -> Result<Vec<u8>> {
        let mut q = StreamingQuantizer::new("model.safetensors", dtype)?;
        for c in bytes.chunks(chunk) {
            q.push(c)?;
        }
        q.finish()
    }

    /// Every chunking gives the tensors `crossrank quantize` writes, byte
    /// for byte, and a file the loader reads.
    #[test]
    fn streamed_equals_quantized_at_once() {
        let bytes = sample();
        let w = Weights::from_shards(vec![("model.safetensors".into(), bytes.clone())]).unwrap();
        for dtype in [WeightDtype::F16, WeightDtype::Q8, WeightDtype::Q4, WeightDtype::Q4All] {
            let mut want: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
            for name in w.names() {
                want.extend(encode(&w, name, plan_tensor(&w, name, dtype).unwrap(), crate::quantize::Rounding::Nearest).unwrap().0);
            }
            want.sort_by(|a, b| a.0.cmp(&b.0));
            for chunk in [1, 3, 7, 64, 1000, 4096, bytes.len()] {
                let out = stream(&bytes, dtype, chunk).unwrap();
                let st = safetensors::SafeTensors::deserialize(&out).unwrap();
                let mut got: Vec<_> =
                    st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
                got.sort_by(|a, b| a.0.cmp(&b.0));
                assert_eq!(got, want, "{} in chunks of {chunk}", dtype.as_str());
                let (_, meta) = safetensors::SafeTensors::read_metadata(&out).unwrap();
                assert_eq!(meta.metadata().as_ref().unwrap()["crossrank.quantization"], dtype.as_str());
                // The loader sees quantized tensors under their plain names.
                Weights::from_shards(vec![("q".into(), out)]).unwrap();
            }
            let names: Vec<&str> = want.iter().map(|t| t.0.as_str()).collect();
            if dtype != WeightDtype::F16 {
                assert!(names.contains(&"roberta.embeddings.word_embeddings.weight.qscale"), "{names:?}");
                assert!(names.contains(&"done.weight.qscale") && !names.contains(&"done.weight.qscale.qscale"), "{names:?}");
            } else {
                // 1e6 does not fit f16: that matrix stays f32.
                let big = want.iter().find(|t| t.0 == "roberta.encoder.layer.0.intermediate.dense.weight").unwrap();
                assert_eq!(big.1, Dtype::F32);
                let q = want.iter().find(|t| t.0 == "roberta.encoder.layer.0.attention.self.query.weight").unwrap();
                assert_eq!(q.1, Dtype::F16);
            }
        }
    }

    #[test]
    fn bad_streams_are_typed_errors() {
        let bytes = sample();
        let msg = |r: Result<Vec<u8>>| r.expect_err("must fail").to_string();
        assert!(msg(stream(&bytes[..bytes.len() - 1], WeightDtype::Q8, 100)).contains("truncated"));
        assert!(msg(stream(&bytes[..5], WeightDtype::Q8, 100)).contains("truncated"));
        assert!(msg(stream(&[], WeightDtype::Q8, 100)).contains("truncated"));
        let mut long = bytes.clone();
        long.push(0);
        assert!(msg(stream(&long, WeightDtype::Q8, 100)).contains("more bytes than its header"));
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert!(msg(stream(&huge, WeightDtype::Q4, 3)).contains("not a safetensors file"));
        let mut junk = 4u64.to_le_bytes().to_vec();
        junk.extend_from_slice(b"{]}x");
        assert!(msg(stream(&junk, WeightDtype::Q4, 64)).contains("corrupt header"));
        // Offsets that leave a hole.
        let header = br#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
        let mut hole = (header.len() as u64).to_le_bytes().to_vec();
        hole.extend_from_slice(header);
        hole.extend_from_slice(&[0; 8]);
        assert!(msg(stream(&hole, WeightDtype::Q8, 64)).contains("corrupt header"));
        assert!(StreamingQuantizer::new("m", WeightDtype::F32).is_err());
        // After an error, the stream stays failed.
        let mut q = StreamingQuantizer::new("m", WeightDtype::Q8).unwrap();
        assert!(q.push(&junk).is_err());
        assert!(q.push(&bytes).is_err());
    }
}
