// Fetching a checkpoint's files: from a base URL, a local directory or
// `file:` URL (Node, Deno), or a Hugging Face Hub repo id (every name
// checked before it becomes a URL or a path, as the Rust core's `files`
// rule does); kept in the Cache API where the environment has one, and in
// the standard Hugging Face cache on disk in Node and Deno (shared with
// Python and the crossrank CLI); or a files object given as it is.
import { HubDiskCache, fileUrlResponse, hubEndpoint, isLocalPath, localDirUrl } from './disk.js';

const REQUIRED = ['config.json', 'tokenizer.json'];
const OPTIONAL = ['tokenizer_config.json', 'special_tokens_map.json'];
/** What an embedder also reads: the sentence-transformers files (pooling, normalization, length, prompts). */
export const EMBEDDER_FILES = ['modules.json', 'sentence_bert_config.json', 'config_sentence_transformers.json', '1_Pooling/config.json'];
const CACHE_NAME = 'crossrank-models-v1';

/**
 * Where downloads are kept: the Cache API where the environment has one
 * (browsers, secure contexts, Deno, Service Workers), else the Hugging Face
 * cache on disk where there is a file system (Node: Hub files), else
 * nowhere.
 */
export async function openCache(enabled) {
  if (!enabled) return undefined;
  if (!globalThis.caches) return HubDiskCache.open();
  try {
    return await globalThis.caches.open(CACHE_NAME);
  } catch {
    return undefined; // opaque origins, private modes: download every time
  }
}

/**
 * A progress event, a superset of transformers.js's: `status` ('initiate',
 * 'download', 'progress', 'done'), `name` (the model), `file`, `progress`
 * (percent, when the size is known), `loaded` and `total` bytes.
 */
function progressEvent(status, model, file, loaded, total) {
  const e = { status, name: model, file, loaded, total };
  if (total) e.progress = (100 * loaded) / total;
  return e;
}

/** The bytes of `res`'s body, read as they arrive (with progress events). */
async function readBody(res, name, onProgress, model) {
  const total = Number(res.headers.get('content-length')) || undefined;
  if (!res.body || !onProgress) {
    const bytes = new Uint8Array(await res.arrayBuffer());
    onProgress?.(progressEvent('progress', model, name, bytes.length, bytes.length));
    return bytes;
  }
  const chunks = [];
  let loaded = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress(progressEvent('progress', model, name, loaded, total));
  }
  return concat(chunks, loaded);
}

function concat(chunks, length) {
  // One chunk that owns its whole buffer is used as it is (it may be
  // transferred to a worker).
  if (chunks.length === 1 && chunks[0].byteOffset === 0 && chunks[0].byteLength === chunks[0].buffer.byteLength) return chunks[0];
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Bytes handed to the quantizer per call (fewer calls; a worker's messages). */
const QUANTIZE_BATCH = 8 << 20;

/**
 * `res`'s body quantized as it arrives (`quantizer`: see core.js), so the
 * original weights file is never held: what stays is the quantized file.
 */
async function quantizeBody(res, name, onProgress, model, quantizer) {
  const total = Number(res.headers.get('content-length')) || undefined;
  const q = await quantizer(name);
  const reader = res.body?.getReader();
  try {
    let batch = [];
    let batched = 0;
    let loaded = 0;
    for (;;) {
      const { done, value } = reader ? await reader.read() : { done: true };
      if (value?.length) {
        batch.push(value);
        batched += value.length;
        loaded += value.length;
        onProgress?.(progressEvent('progress', model, name, loaded, total));
      }
      if (batched && (done || batched >= QUANTIZE_BATCH)) {
        const chunk = concat(batch, batched);
        batch = [];
        batched = 0;
        await q.push(chunk);
      }
      if (done) break;
    }
    return await q.finish();
  } catch (e) {
    q.abort();
    // Stop the download (and a cache's branch from queueing what no one reads).
    reader?.cancel().catch(() => {});
    throw e;
  }
}

/** How long a cached "this optional file does not exist" answer is trusted. */
const NEGATIVE_TTL_MS = 60 * 60 * 1000;

/**
 * A file name from a checkpoint (a shard index's `weight_map` value): a
 * relative path of `/`-separated segments, none empty, `.` or `..`; no
 * `\`, `:` (a scheme such as https:), control characters or leading `/`
 * — the same rule as the Rust loader's — so it can only name a file under
 * the checkpoint's base URL.
 */
function checkFileName(name, what) {
  const bad = (why) => {
    throw new Error(`invalid ${what}: file name ${JSON.stringify(name)} ${why}`);
  };
  if (typeof name !== 'string' || !name || name.length > 512) bad('is empty, too long or not a string');
  if (name.startsWith('/')) bad('is an absolute path');
  if (/[\\:\u0000-\u001f\u007f]/.test(name)) bad("contains '\\', ':' or a control character");
  if (name.split('/').some((s) => s === '' || s === '.' || s === '..')) bad("has an empty, '.' or '..' segment");
  return name;
}

/** The shard files a `model.safetensors.index.json` names, each checked. */
function shardNames(indexBytes) {
  const what = 'model.safetensors.index.json';
  let index;
  try {
    index = JSON.parse(new TextDecoder().decode(indexBytes));
  } catch (e) {
    throw new Error(`invalid ${what}: ${e.message}`);
  }
  const map = index?.weight_map;
  if (!map || typeof map !== 'object' || Array.isArray(map)) throw new Error(`invalid ${what}: no "weight_map" object`);
  // Own keys, `__proto__` included (JSON.parse makes it an own property).
  const names = Reflect.ownKeys(map).map((k) => {
    const f = checkFileName(map[k], what);
    if (!f.endsWith('.safetensors')) throw new Error(`invalid ${what}: shard ${JSON.stringify(f)} is not a .safetensors file`);
    return f;
  });
  if (!names.length) throw new Error(`invalid ${what}: "weight_map" lists no shard`);
  return [...new Set(names)].sort();
}

/**
 * Fetch `name` under `base`, from the cache when it is there; a weights
 * file with `ctx.quantize` set goes through the quantizer as it arrives.
 * A download is kept in the cache as it streams in (the cache reads one
 * branch of the body, the loader the other). A missing optional file is
 * cached as a 404 too, so a reload makes no request — but only for an
 * hour, and a failed load drops those answers (`forgetMissing`), so a file
 * added later is found. Required files are never cached as missing.
 */
async function fetchFile(base, name, { onProgress, cache, model, quantize }, optional) {
  const url = new URL(name, base).href;
  onProgress?.(progressEvent('initiate', model, name, 0, undefined));
  let res;
  let stored; // the cache's write, when this is a download
  if (base.protocol === 'file:') {
    res = await fileUrlResponse(new URL(name, base));
    if (!res) {
      if (optional) return undefined;
      throw new Error(`cannot read ${name} from ${base.href}: no such file`);
    }
  } else {
    res = cache && (await cache.match(url));
    if (res && res.status === 404 && !(Date.now() - Number(res.headers.get('x-crossrank-cached-at')) < NEGATIVE_TTL_MS)) {
      await cache.delete(url);
      res = undefined;
    }
    const hit = !!res;
    if (!res) {
      onProgress?.(progressEvent('download', model, name, 0, undefined));
      try {
        res = await fetch(url);
      } catch (e) {
        throw new Error(`cannot fetch ${name} from ${base}: ${e.message ?? e}`);
      }
    }
    if (!res.ok) {
      if (optional && res.status === 404) {
        if (cache && !hit) await cache.put(url, new Response(null, { status: 404, headers: { 'x-crossrank-cached-at': String(Date.now()) } }));
        return undefined;
      }
      throw new Error(`cannot fetch ${name} from ${base}: HTTP ${res.status}`);
    }
    if (cache && !hit && res.body) {
      const [toCache, toLoad] = res.body.tee();
      // The length only when it is the body's (not a compressed size).
      const length = res.headers.get('content-encoding') ? null : res.headers.get('content-length');
      const headers = length ? { 'content-length': length } : {};
      // A cache that cannot keep the file (quota, a read-only disk) costs
      // the cache, not the load.
      stored = cache.put(url, new Response(toCache, { headers })).catch(() => {});
      res = new Response(toLoad, { headers: res.headers });
    }
  }
  const weights = name.endsWith('.safetensors') && quantize;
  const bytes = weights ? await quantizeBody(res, name, onProgress, model, quantize) : await readBody(res, name, onProgress, model);
  await stored;
  onProgress?.(progressEvent('done', model, name, bytes.length, bytes.length));
  return bytes;
}

const REPO_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;
const REVISION = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;
const COMMIT = /^[0-9a-f]{40}$/;

/**
 * `org/name` or `org/name@revision` → the Hub's resolve URL for one
 * commit. A branch or tag is resolved to its commit first (the Hub API,
 * the answer cached for offline use), so the Cache API never holds files
 * of two revisions under one name: each file's cache key names the commit.
 */
async function hubBase(spec, cache, revision) {
  const [id, at, ...rest] = spec.split('@');
  const rev = at ?? revision ?? 'main';
  const HUB = hubEndpoint();
  if (rest.length || !REPO_ID.test(id) || id.includes('..')) throw new Error(`${JSON.stringify(spec)} is not a Hugging Face repo id (owner/name[@revision])`);
  if (!REVISION.test(rev) || rev.split('/').some((s) => s === '.' || s === '..')) throw new Error(`${JSON.stringify(rev)} is not a revision`);
  let commit = COMMIT.test(rev) ? rev : undefined;
  if (!commit) {
    const api = `${HUB}/api/models/${id}/revision/${encodeURIComponent(rev)}`;
    // On disk, a revision resolved before is taken as it is (no request):
    // the Hugging Face cache's refs/REVISION, as transformers.js and
    // offline Python do. `cache: false` (or a commit) asks the Hub again.
    let res = cache?.offlineFirst ? await cache.match(api) : undefined;
    if (!res) {
      try {
        res = await fetch(api);
        if (res.ok && cache) await cache.put(api, res.clone());
      } catch {
        res = cache && (await cache.match(api)); // offline: the commit seen last
      }
    }
    if (!res?.ok) throw new Error(`cannot resolve ${id}@${rev} on ${HUB}: ${res ? `HTTP ${res.status}` : 'offline and not cached'}`);
    const sha = (await res.json())?.sha;
    if (!COMMIT.test(sha ?? '')) throw new Error(`cannot resolve ${id}@${rev}: the Hub sent no commit hash`);
    commit = sha;
  }
  return `${HUB}/${id}/resolve/${commit}/`;
}

/** Drop cached "missing" answers under `base` (after a failed load). */
async function forgetMissing(base, cache) {
  if (!cache) return;
  for (const req of await cache.keys()) {
    if (!req.url.startsWith(base.href)) continue;
    const res = await cache.match(req);
    if (res?.status === 404) await cache.delete(req);
  }
}

/** Whether `source` is a files object (`{ name: bytes }`), not a URL or a repo id. */
export function isFilesObject(source) {
  return Boolean(source) && typeof source === 'object' && !(source instanceof URL);
}

/** Resolve `source` (files object, base URL, or Hub repo id) to `{ name: Uint8Array }`. */
export async function resolveFiles(source, ctx) {
  if (isFilesObject(source)) {
    const files = Object.create(null);
    for (const k of Reflect.ownKeys(source)) {
      if (typeof k !== 'string') continue;
      const v = source[k];
      if (!(v instanceof Uint8Array || v instanceof ArrayBuffer || ArrayBuffer.isView(v))) {
        throw new Error(`files[${JSON.stringify(k)}] must be a Uint8Array or an ArrayBuffer`);
      }
      files[k] = v instanceof Uint8Array ? v : ArrayBuffer.isView(v) ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : new Uint8Array(v);
    }
    return files;
  }
  let base = String(source);
  ctx = { ...ctx, model: base };
  if (isLocalPath(base)) {
    base = await localDirUrl(base);
  } else {
    if (!/^(https?|file):|^\.{0,2}\//.test(base)) base = await hubBase(base, ctx.cache, ctx.revision);
    if (!base.endsWith('/')) base += '/';
    base = new URL(base, globalThis.location?.href);
  }
  try {
    return await fetchAll(base, ctx);
  } catch (e) {
    await forgetMissing(base, ctx.cache);
    throw e;
  }
}

async function fetchAll(base, ctx) {
  const files = Object.create(null);
  for (const f of REQUIRED) files[f] = await fetchFile(base, f, ctx, false);
  for (const f of [...OPTIONAL, ...(ctx.extraFiles ?? [])]) {
    const b = await fetchFile(base, f, ctx, true);
    if (b) files[f] = b;
  }
  const single = await fetchFile(base, 'model.safetensors', ctx, true);
  if (single) {
    files['model.safetensors'] = single;
  } else {
    const index = await fetchFile(base, 'model.safetensors.index.json', ctx, false);
    files['model.safetensors.index.json'] = index;
    // Every name checked before the first shard is requested.
    for (const s of shardNames(index)) files[s] = await fetchFile(base, s, ctx, false);
  }
  return files;
}


/**
 * Remove every model file crossrank cached with the Cache API. (Files in the
 * Hugging Face cache on disk are shared with other programs and stay: delete
 * `$HF_HOME/hub/models--OWNER--NAME` to remove one.)
 */
export async function clearCache() {
  if (globalThis.caches) await globalThis.caches.delete(CACHE_NAME);
}
