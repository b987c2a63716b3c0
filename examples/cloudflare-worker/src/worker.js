// A reranker in a Cloudflare Worker: TEI's `POST /rerank` on crossrank's slim
// CPU-only .wasm (the package's `workerd` export, imported as a compiled
// module: Workers cannot compile wasm from bytes).
//
//   POST /rerank {"query": "...", "texts": ["...", ...], "raw_scores": false,
//                 "return_text": false, "truncate": true}
//   -> 200 [{"index": 1, "score": 0.93, "text"?: "..."}, ...] best first
//   GET /health -> 200 {"model": ..., "dtype": ..., "device": "cpu"}
//
// Errors are JSON `{"error": message, "error_type": ...}` with TEI's statuses:
// 413 too many texts, 422 a bad request, 424 the model failed while scoring,
// 503 the model cannot be loaded (bad URL, bad files), 507 the model would
// not fit the isolate's memory limit.
//
// The model is loaded once per isolate (kept across requests) from R2
// (`MODEL_BUCKET` + `MODEL_PREFIX`) or `MODEL_URL`; with MODEL_URL the files
// are kept with the Cache API by the package itself, so a new isolate in the
// same colo does not download them again.
import { Reranker } from 'crossrank';

const MAX_TEXTS = 1024; // TEI's default --max-client-batch-size is 32; reranking asks for more
const MAX_BODY = 8 << 20;

// Memory needed to hold a model in this isolate, from the bytes of its
// weights file, measured with benches/edge/memory.mjs (slim .wasm, real
// all-MiniLM-L6-v2 weights as a reranker; docs/npm.md "Edge runtimes"): while
// loading, the fetched file is held in JS and copied into wasm memory, and
// the wasm heap's high-water mark after load is 2.1x (f32), 3.2x (f16), 2.9x
// (q8) and 2.8x (q4) the file; scoring batches of 4 pairs of 512 tokens adds
// about 13-22 MB for a MiniLM-sized model. FACTOR = JS copy + wasm peak.
// The weights file is assumed to be stored in the dtype asked for (a
// checkpoint from `crossrank quantize`); an f32 file quantized at load needs
// the f32 factor.
const FACTOR = { f32: 3.2, f16: 4.3, q8: 3.9, q4: 4.1, 'q4-all': 4.1 };
const BASE_MB = 8; // the glue JS, the tokenizer, an empty wasm instance (an estimate; workerd's own heap is not counted by Workers' limit)
// Pairs per forward pass: activations grow with it (batch 32 x 512 tokens
// takes MiniLM q8 from 68 to 301 MB of wasm memory; batch 4, to 81 MB).
const BATCH_SIZE = 4;

let loading; // Promise<Reranker> shared by concurrent requests of this isolate

function json(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}
function fail(status, error_type, error) {
  return json(status, { error, error_type });
}

/** The size of the weights: `total_size` of a shard index, else 0 (unknown). */
function indexSize(bytes) {
  try {
    return Number(JSON.parse(new TextDecoder().decode(bytes))?.metadata?.total_size) || 0;
  } catch {
    return 0; // the package's loader reports a bad index precisely
  }
}

/**
 * The checkpoint and the size of its weights: `{ name: bytes }` read from R2
 * (single file or shards), or the base URL (the package downloads and caches
 * the files; one HEAD here sizes them first).
 */
async function source(env) {
  if (env.MODEL_BUCKET) {
    const prefix = env.MODEL_PREFIX ?? '';
    const get = async (name) => {
      const obj = await env.MODEL_BUCKET.get(prefix + name);
      return obj ? new Uint8Array(await obj.arrayBuffer()) : undefined;
    };
    const files = {};
    for (const name of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'model.safetensors', 'model.safetensors.index.json']) {
      const b = await get(name);
      if (b) files[name] = b;
    }
    for (const name of ['config.json', 'tokenizer.json']) if (!files[name]) throw new Error(`${prefix + name} is not in MODEL_BUCKET`);
    if (files['model.safetensors']) return { files, bytes: files['model.safetensors'].length };
    if (!files['model.safetensors.index.json']) throw new Error(`neither ${prefix}model.safetensors nor its .index.json is in MODEL_BUCKET`);
    // The package checks every shard name before use; here they are only read.
    const shards = new Set(Object.values(JSON.parse(new TextDecoder().decode(files['model.safetensors.index.json'])).weight_map ?? {}));
    let bytes = 0;
    for (const name of shards) {
      if (typeof name !== 'string' || name.includes('..')) throw new Error(`bad shard name ${JSON.stringify(name)}`);
      const b = await get(name);
      if (!b) throw new Error(`shard ${prefix + name} is not in MODEL_BUCKET`);
      files[name] = b;
      bytes += b.length;
    }
    return { files, bytes };
  }
  if (!env.MODEL_URL) throw new Error('set MODEL_URL (or bind MODEL_BUCKET) to a checkpoint directory');
  const base = env.MODEL_URL.endsWith('/') ? env.MODEL_URL : env.MODEL_URL + '/';
  const ask = async (name, method) => {
    try {
      return await fetch(base + name, { method });
    } catch (e) {
      throw new Error(`cannot reach ${base}: ${e.message ?? e}`);
    }
  };
  let res = await ask('model.safetensors', 'HEAD');
  if (res.ok) return { files: base, bytes: Number(res.headers.get('content-length')) || 0 };
  if (res.status !== 404) throw new Error(`cannot fetch model.safetensors from ${base}: HTTP ${res.status}`);
  res = await ask('model.safetensors.index.json', 'GET');
  if (!res.ok) throw new Error(`cannot fetch model.safetensors or model.safetensors.index.json from ${base}: HTTP ${res.status}`);
  return { files: base, bytes: indexSize(new Uint8Array(await res.arrayBuffer())) };
}

class TooBig extends Error {}

function reranker(env) {
  loading ??= (async () => {
    const dtype = env.MODEL_DTYPE ?? 'f32';
    const { files, bytes } = await source(env);
    const limit = Number(env.MEMORY_LIMIT_MB ?? 128);
    const needMb = BASE_MB + (bytes / 1e6) * (FACTOR[dtype] ?? FACTOR.f32);
    if (limit > 0 && needMb > limit) {
      throw new TooBig(
        `the model needs about ${Math.round(needMb)} MB as ${dtype} (weights file ${Math.round(bytes / 1e6)} MB) and this Worker has ${limit} MB: ` +
          'use a smaller model or a q8/q4 checkpoint made with `crossrank quantize`',
      );
    }
    return Reranker.load(files, { device: 'cpu', dtype });
  })().catch((e) => {
    loading = undefined; // the next request tries again (a fixed URL, a new upload)
    throw e;
  });
  return loading;
}

async function rerank(request, env) {
  const len = Number(request.headers.get('content-length') ?? 0);
  if (len > MAX_BODY) return fail(413, 'Validation', `request body over ${MAX_BODY} bytes`);
  let body;
  try {
    body = await request.json();
  } catch (e) {
    return fail(422, 'Validation', `invalid JSON: ${e.message}`);
  }
  const { query, texts, raw_scores = false, return_text = false, truncate = true } = body ?? {};
  if (typeof query !== 'string') return fail(422, 'Validation', '"query" must be a string');
  if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) return fail(422, 'Validation', '"texts" must be an array of strings');
  if (!texts.length) return fail(422, 'Validation', '"texts" cannot be empty');
  if (texts.length > MAX_TEXTS) return fail(413, 'Validation', `batch size ${texts.length} > maximum allowed batch size ${MAX_TEXTS}`);
  if (typeof raw_scores !== 'boolean' || typeof return_text !== 'boolean' || typeof truncate !== 'boolean') {
    return fail(422, 'Validation', '"raw_scores", "return_text" and "truncate" must be booleans');
  }
  if (!truncate) return fail(422, 'Validation', 'truncate=false is not supported here: passages are truncated as FlagEmbedding does');
  let r;
  try {
    r = await reranker(env);
  } catch (e) {
    return e instanceof TooBig ? fail(507, 'Backend', e.message) : fail(503, 'Unhealthy', `model not loaded: ${e.message}`);
  }
  try {
    const ranked = await r.rerank(query, texts, { normalize: !raw_scores, returnDocuments: return_text, batchSize: BATCH_SIZE });
    return json(200, ranked.map(({ index, score, document }) => (return_text ? { index, score, text: document } : { index, score })));
  } catch (e) {
    return fail(424, 'Backend', e.message);
  }
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname === '/rerank') {
      if (request.method !== 'POST') return fail(405, 'Validation', 'use POST');
      return rerank(request, env);
    }
    if (pathname === '/health') {
      try {
        const r = await reranker(env);
        return json(200, { model: env.MODEL_PREFIX ?? env.MODEL_URL, dtype: env.MODEL_DTYPE ?? 'f32', device: r.device, build: r.build, wasm_memory_bytes: r.memoryBytes() });
      } catch (e) {
        return fail(e instanceof TooBig ? 507 : 503, 'Unhealthy', e.message);
      }
    }
    return fail(404, 'Validation', `no route ${pathname}: POST /rerank or GET /health`);
  },
};
