// A static file server for the browser tests and the demo: serves the
// repository root on 127.0.0.1 and counts requests per path (the Cache API
// test asserts a reload fetches no model file).
import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, join, normalize, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * The headers that make a page cross-origin isolated (SharedArrayBuffer,
 * so crossrank's CPU threads): every response carries them, workers'
 * scripts included. Same-origin resources need nothing more; a
 * cross-origin one (a model on the Hub) must allow CORS, which the Hub does.
 */
export const ISOLATION_HEADERS = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
};

/**
 * Start serving `dir` (default: the repository root); resolves to { url,
 * counts, close }. `isolated`: send ISOLATION_HEADERS.
 */
export function serve({ dir = root, port = 0, log = false, isolated = false } = {}) {
  const counts = new Map();
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    counts.set(path, (counts.get(path) ?? 0) + 1);
    let file = normalize(join(dir, path));
    if (!file.startsWith(dir)) {
      res.writeHead(403).end();
      return;
    }
    try {
      if (statSync(file).isDirectory()) file = join(file, 'index.html');
      const size = statSync(file).size;
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'content-length': size,
        'cache-control': 'no-store',
        ...(isolated ? ISOLATION_HEADERS : {}),
      });
      createReadStream(file).pipe(res);
      if (log) console.log(`200 ${path}`);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      if (log) console.log(`404 ${path}`);
    }
  });
  return new Promise((ok) =>
    server.listen(port, '127.0.0.1', () => {
      const url = `http://127.0.0.1:${server.address().port}`;
      // close(): stop listening and end every connection, idle or not (a
      // page's worker can still hold one open; waiting on it hung a test).
      ok({ url, counts, close: () => new Promise((done) => { server.close(done); server.closeAllConnections(); }) });
    }),
  );
}

// `node tests/browser/server.mjs [port]`: serve the demo (web/) and the
// package, cross-origin isolated so the CPU path runs on threads
// (CROSSRANK_ISOLATED=0 turns that off, to compare).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const isolated = process.env.CROSSRANK_ISOLATED !== '0';
  const { url } = await serve({ port: Number(process.argv[2] ?? 8080), log: true, isolated });
  console.log(`serving ${root} at ${url} — open ${url}/web/`);
}
