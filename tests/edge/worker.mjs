// examples/cloudflare-worker under `wrangler dev` (workerd) on loopback, with
// an installed crossrank package: used by edge.test.mjs and
// benches/edge/worker.mjs.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const bin = (name) => join(here, 'node_modules', '.bin', name);

/** A port nobody listens on now (the OS picks it). */
const freePort = () =>
  new Promise((ok, fail) => {
    const srv = createServer().once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });

export const post = (url, body) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });

/**
 * examples/cloudflare-worker in a temp dir with the tarball installed, under
 * `wrangler dev`. `r2: { prefix, from }` binds a local R2 bucket as
 * MODEL_BUCKET holding the files of checkpoint directory `from` under `prefix`
 * (wrangler's local R2 simulation, persisted in the temp dir).
 */
export async function startWorker(pkgDir, vars, { r2 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'crossrank-worker-'));
  cpSync(join(root, 'examples', 'cloudflare-worker', 'src'), join(dir, 'src'), { recursive: true });
  cpSync(join(root, 'examples', 'cloudflare-worker', 'wrangler.toml'), join(dir, 'wrangler.toml'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(pkgDir, join(dir, 'node_modules', 'crossrank'));
  // No network: no metrics, no download of request.cf data (miniflare's fallback is used).
  const env = { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', CI: '1', XDG_CONFIG_HOME: join(dir, '.config'), HOME: dir, NO_COLOR: '1' };
  const state = join(dir, 'state');
  if (r2) {
    appendFileSync(join(dir, 'wrangler.toml'), '\n[[r2_buckets]]\nbinding = "MODEL_BUCKET"\nbucket_name = "models"\n');
    for (const f of readdirSync(r2.from)) {
      if (f === 'expected.json') continue;
      execFileSync(bin('wrangler'), ['r2', 'object', 'put', `models/${r2.prefix}${f}`, '--file', join(r2.from, f), '--local', '--persist-to', state], { cwd: dir, env, stdio: 'ignore' });
    }
  }
  const port = await freePort();
  const args = ['dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(await freePort()), '--log-level', 'warn', '--persist-to', state];
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`);
  const child = spawn(bin('wrangler'), args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited ${child.exitCode}:\n${log}`);
    if (Date.now() - t0 > 90_000) {
      child.kill();
      throw new Error(`wrangler dev did not answer in 90 s:\n${log}`);
    }
    try {
      const res = await fetch(`${url}/nope`);
      if (res.status === 404) break;
    } catch {}
    await new Promise((ok) => setTimeout(ok, 300));
  }
  return { url, log: () => log, stop: () => new Promise((ok) => (child.once('exit', ok), child.kill('SIGTERM'))), dir };
}

