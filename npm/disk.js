// The file system, where the runtime has one (Node, Deno, Bun): local
// checkpoint directories and `file:` URLs, and the standard Hugging Face
// cache for Hub downloads —
//   $HF_HUB_CACHE (default $HF_HOME/hub, $HF_HOME default ~/.cache/huggingface)
//     models--OWNER--NAME/refs/REVISION          the commit a branch or tag resolved to
//     models--OWNER--NAME/blobs/SHA256           each file's bytes, once
//     models--OWNER--NAME/snapshots/COMMIT/FILE  a link to its blob
//     models--OWNER--NAME/.no_exist/COMMIT/FILE  an optional file the repo lacks
// the layout huggingface_hub and the crossrank CLI use, so a model
// downloaded by any of them is found by the others. Every write goes to a
// temporary file renamed into place. Where the Cache API exists (browsers,
// Deno) it keeps downloads instead; in a browser none of this exists.

/** `node:fs/promises`, `node:path`, `node:url`, `node:os` and `node:crypto`, or undefined (browsers). */
let nodeModules;
async function node() {
  if (nodeModules !== undefined) return nodeModules;
  // A page or a worker has no file system, even where a bundler would shim
  // `node:fs`; nor has a Cloudflare Worker (nodejs_compat's is in memory).
  const workerd = globalThis.navigator?.userAgent === 'Cloudflare-Workers';
  if (globalThis.document || globalThis.WorkerGlobalScope || workerd || !(globalThis.process?.versions?.node || globalThis.Deno)) {
    nodeModules = null;
    return null;
  }
  try {
    // Specifiers in variables, so that bundlers building for the browser
    // do not try to resolve Node's modules.
    const load = (name) => import(/* webpackIgnore: true */ /* @vite-ignore */ name);
    const [fs, path, url, os, crypto] = await Promise.all(['node:fs/promises', 'node:path', 'node:url', 'node:os', 'node:crypto'].map(load));
    nodeModules = { fs, path, url, os, crypto };
  } catch {
    nodeModules = null;
  }
  return nodeModules;
}

/** An environment variable, where the runtime lets us read it. */
export function envVar(name) {
  try {
    return globalThis.process?.env?.[name] ?? globalThis.Deno?.env?.get?.(name) ?? undefined;
  } catch {
    return undefined; // Deno without --allow-env
  }
}

/** The Hub, or a mirror named by `HF_ENDPOINT` (Node, Deno): no trailing `/`. */
export function hubEndpoint() {
  return (envVar('HF_ENDPOINT') || 'https://huggingface.co').replace(/\/+$/, '');
}

/** Whether `source` names a local directory rather than a URL or a repo id. */
export function isLocalPath(source) {
  if (globalThis.document || globalThis.WorkerGlobalScope) return false; // pages: relative URLs
  return source.startsWith('file:') || source.startsWith('/') || source.startsWith('./') || source.startsWith('../') || /^[A-Za-z]:[\\/]/.test(source);
}

/** A local directory (path or `file:` URL) as a `file:` URL ending in `/`. */
export async function localDirUrl(source) {
  const m = await node();
  if (!m) throw new Error(`${source}: a local directory needs a file system (Node or Deno); in a page, pass a URL`);
  const dir = source.startsWith('file:') ? m.url.fileURLToPath(source) : m.path.resolve(source);
  const st = await m.fs.stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new Error(`${source} is not a directory (a checkpoint directory holds config.json, tokenizer.json and the weights)`);
  const href = m.url.pathToFileURL(dir).href;
  return new URL(href.endsWith('/') ? href : `${href}/`);
}

/** Bytes read from a file per chunk of its stream. */
const READ_CHUNK = 4 << 20;

/**
 * A regular file as a `Response` whose body streams it (a chunk at a time,
 * so a multi-gigabyte weights file is never held whole), or undefined
 * when there is no such file.
 */
async function fileResponse(m, path) {
  const st = await m.fs.stat(path).catch(() => undefined);
  if (!st) return undefined;
  // A FIFO or a device would block or never end.
  if (!st.isFile()) throw new Error(`${path} is not a regular file`);
  const handle = await m.fs.open(path, 'r');
  const body = new ReadableStream({
    async pull(controller) {
      try {
        const buf = new Uint8Array(READ_CHUNK);
        const { bytesRead } = await handle.read(buf, 0, buf.length, null);
        if (bytesRead === 0) {
          await handle.close();
          controller.close();
        } else {
          controller.enqueue(bytesRead === buf.length ? buf : buf.slice(0, bytesRead));
        }
      } catch (e) {
        await handle.close().catch(() => {});
        controller.error(e);
      }
    },
    cancel: () => handle.close(),
  });
  return new Response(body, { headers: { 'content-length': String(st.size) } });
}

/** A `file:` URL as a streaming `Response`, or undefined when there is no such file. */
export async function fileUrlResponse(url) {
  const m = await node();
  if (!m) throw new Error(`${url.href}: file: URLs need a file system (Node or Deno)`);
  return fileResponse(m, m.url.fileURLToPath(url));
}

const COMMIT = /^[0-9a-f]{40}$/;

/**
 * The Hugging Face cache on disk behind the small part of the Cache API that
 * fetch.js uses (`match`, `put`, `delete`, `keys`), for the Hub's URLs only:
 * `{endpoint}/{owner}/{name}/resolve/{commit}/{file}` and
 * `{endpoint}/api/models/{owner}/{name}/revision/{rev}`. Other URLs are not
 * kept (`match` finds nothing, `put` does nothing).
 */
export class HubDiskCache {
  /** Revisions resolved before are used without asking the Hub again. */
  offlineFirst = true;

  constructor(m, root, endpoint) {
    this.m = m;
    this.root = root;
    this.endpoint = `${endpoint}/`;
  }

  /** The cache where there is a file system, else undefined. */
  static async open() {
    const m = await node();
    if (!m) return undefined;
    let root = envVar('HF_HUB_CACHE') || envVar('HUGGINGFACE_HUB_CACHE');
    if (!root) {
      const home = envVar('HF_HOME') || m.path.join(envVar('XDG_CACHE_HOME') || m.path.join(m.os.homedir(), '.cache'), 'huggingface');
      root = m.path.join(home, 'hub');
    }
    // Deno without --allow-read/--allow-write for it keeps the Cache API.
    const deno = globalThis.Deno?.permissions;
    if (deno && ['read', 'write'].some((name) => deno.querySync?.({ name, path: root })?.state !== 'granted')) return undefined;
    return new HubDiskCache(m, root, hubEndpoint());
  }

  /** `{ repoDir, commit?, file?, rev? }` for a Hub URL, else undefined. */
  locate(url) {
    if (!url.startsWith(this.endpoint)) return undefined;
    const parts = new URL(url).href.slice(this.endpoint.length).split(/[?#]/)[0].split('/').map(decodeURIComponent);
    const repoDir = (owner, name) => this.m.path.join(this.root, `models--${owner}--${name}`);
    if (parts[0] === 'api' && parts[1] === 'models' && parts[4] === 'revision' && parts.length >= 6) {
      return { repoDir: repoDir(parts[2], parts[3]), rev: parts.slice(5).join('/') };
    }
    if (parts[2] === 'resolve' && COMMIT.test(parts[3] ?? '') && parts.length >= 5) {
      return { repoDir: repoDir(parts[0], parts[1]), commit: parts[3], file: parts.slice(4).join('/') };
    }
    return undefined;
  }

  async match(url) {
    const at = this.locate(url);
    if (!at) return undefined;
    const { fs, path } = this.m;
    if (at.rev !== undefined) {
      const sha = (await fs.readFile(path.join(at.repoDir, 'refs', at.rev), 'utf8').catch(() => '')).trim();
      return COMMIT.test(sha) ? new Response(JSON.stringify({ sha }), { headers: { 'content-type': 'application/json' } }) : undefined;
    }
    const snap = path.join(at.repoDir, 'snapshots', at.commit, at.file);
    const st = await fs.stat(snap).catch(() => undefined);
    if (st?.isFile()) return fileResponse(this.m, snap);
    const missing = await fs.stat(path.join(at.repoDir, '.no_exist', at.commit, at.file)).catch(() => undefined);
    if (missing) return new Response(null, { status: 404, headers: { 'x-crossrank-cached-at': String(missing.mtimeMs) } });
    return undefined;
  }

  async put(url, res) {
    try {
      await this.store(url, res);
    } catch (e) {
      // A read-only or full disk costs the cache, not the load.
      if (!this.warned) console.warn(`crossrank: cannot write the Hugging Face cache at ${this.root}: ${e.message ?? e}`);
      this.warned = true;
    }
  }

  async store(url, res) {
    const at = this.locate(url);
    if (!at) return;
    const { path } = this.m;
    if (at.rev !== undefined) {
      const sha = (await res.json())?.sha;
      if (COMMIT.test(sha ?? '')) await this.write(path.join(at.repoDir, 'refs', at.rev), new TextEncoder().encode(sha));
      return;
    }
    if (res.status === 404) {
      await this.write(path.join(at.repoDir, '.no_exist', at.commit, at.file), new Uint8Array());
      return;
    }
    // Streamed to a temporary file while hashed (the blob's name is its
    // SHA-256), then renamed into place: never held whole.
    const { fs, crypto } = this.m;
    const blobs = path.join(at.repoDir, 'blobs');
    await fs.mkdir(blobs, { recursive: true });
    const tmp = path.join(blobs, `${globalThis.process?.pid ?? 0}.${Math.random().toString(36).slice(2)}.incomplete`);
    const hash = crypto.createHash('sha256');
    const out = await fs.open(tmp, 'w');
    try {
      if (res.body) {
        for await (const chunk of res.body) {
          hash.update(chunk);
          await out.write(chunk);
        }
      }
      await out.close();
    } catch (e) {
      await out.close().catch(() => {});
      await fs.rm(tmp, { force: true });
      throw e;
    }
    const blob = path.join(blobs, hash.digest('hex'));
    await fs.rename(tmp, blob);
    await this.link(blob, path.join(at.repoDir, 'snapshots', at.commit, at.file));
  }

  async delete(url) {
    const at = this.locate(url);
    if (at?.file) await this.m.fs.rm(this.m.path.join(at.repoDir, '.no_exist', at.commit, at.file), { force: true });
  }

  /** The "missing" answers kept (what `forgetMissing` may drop). */
  async keys() {
    const { fs, path } = this.m;
    const out = [];
    const repos = await fs.readdir(this.root).catch(() => []);
    for (const repo of repos.filter((r) => r.startsWith('models--'))) {
      const [owner, ...name] = repo.slice('models--'.length).split('--');
      const base = path.join(this.root, repo, '.no_exist');
      for (const commit of await fs.readdir(base).catch(() => [])) {
        for (const file of await fs.readdir(path.join(base, commit), { recursive: true }).catch(() => [])) {
          out.push({ url: `${this.endpoint}${owner}/${name.join('--')}/resolve/${commit}/${file.split(path.sep).join('/')}` });
        }
      }
    }
    return out;
  }

  /** `bytes` into `file` through a temporary file renamed into place. */
  async write(file, bytes) {
    const { fs, path } = this.m;
    await fs.mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${globalThis.process?.pid ?? 0}.${Math.random().toString(36).slice(2)}.incomplete`;
    await fs.writeFile(tmp, bytes);
    await fs.rename(tmp, file);
  }

  /** `link` pointing at `blob` (relative, as huggingface_hub makes them); a copy where links cannot be made. */
  async link(blob, link) {
    const { fs, path } = this.m;
    await fs.mkdir(path.dirname(link), { recursive: true });
    const tmp = `${link}.${Math.random().toString(36).slice(2)}.incomplete`;
    try {
      await fs.symlink(path.relative(path.dirname(link), blob), tmp);
    } catch {
      await fs.copyFile(blob, tmp);
    }
    await fs.rename(tmp, link);
  }
}
