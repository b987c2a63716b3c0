// Where crossrank-wasm's time goes in headless Chromium: V8's sampling
// profiler (CDP `Profiler`) over one computeScore on the CPU, self time per
// wasm function, grouped into what the forward pass does.
//
//   ./scripts/build-wasm.sh full          # or any build that left the .wasm below
//   node benches/browser/profile.mjs [--dtype q8] [--pairs 8] [--run benches/models/run-64-60-180] [--top 25]
//
// The shipped .wasm has no function names (wasm-opt drops them), so this
// runs the pre-wasm-opt build cargo left in the target folder
// (`wasm32-unknown-unknown/wasm-release/crossrank_wasm.wasm`, names kept),
// through wasm-bindgen, beside a copy of npm/'s JS: the same code, without
// wasm-opt's -Os pass (bench.mjs times the shipped build).
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir, homedir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import { serve, root } from '../../tests/browser/server.mjs';

const arg = (k, d) => {
  const i = process.argv.indexOf(k);
  return i > 0 ? process.argv[i + 1] : d;
};
const dtype = arg('--dtype', 'q8');
const nPairs = Number(arg('--pairs', 8));
const top = Number(arg('--top', 25));
const run = arg('--run', 'benches/models/run-64-60-180');
const model = 'benches/models/bge-reranker-base-random';
const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache/crossrank/target');
const wasm = join(target, 'wasm32-unknown-unknown/wasm-release/crossrank_wasm.wasm');
if (!existsSync(wasm)) throw new Error(`${wasm} not found: run ./scripts/build-wasm.sh full first`);

// npm/'s JS with both builds' folders holding the named full build (its
// glue is a superset of the slim one's).
const pkg = join(root, 'benches/models/npm-profile');
rmSync(pkg, { recursive: true, force: true });
mkdirSync(pkg, { recursive: true });
for (const f of readdirSync(join(root, 'npm')).filter((f) => f.endsWith('.js'))) cpSync(join(root, 'npm', f), join(pkg, f));
execFileSync('wasm-bindgen', ['--target', 'web', '--out-dir', join(pkg, 'pkg'), wasm], { stdio: 'inherit' });
cpSync(join(pkg, 'pkg'), join(pkg, 'pkg-cpu'), { recursive: true });

const pairs = JSON.parse(readFileSync(join(root, run, 'pairs.json'), 'utf8')).slice(0, nPairs);
const server = await serve();
const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'crossrank-profile-')), {
  executablePath: process.env.CROSSRANK_CHROMIUM ?? '/usr/bin/chromium',
  headless: false,
  args: ['--headless=new', '--no-sandbox', '--disable-background-networking', '--no-first-run', '--js-flags=--max-old-space-size=8192'],
});
const page = await context.newPage();
await page.goto(`${server.url}/tests/browser/blank.html`);
await page.evaluate(async ({ model, dtype, ps }) => {
  const { Reranker } = await import('/benches/models/npm-profile/index.js');
  globalThis.r = await Reranker.load(`/${model}/`, { device: 'cpu', dtype, cache: false, threads: 1 });
  await globalThis.r.computeScore(ps.slice(0, 2), { batchSize: 32 });
}, { model, dtype, ps: pairs });

const cdp = await context.newCDPSession(page);
await cdp.send('Profiler.enable');
await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
await cdp.send('Profiler.start');
const secs = await page.evaluate(async ({ ps }) => {
  const t = performance.now();
  await globalThis.r.computeScore(ps, { batchSize: 32, maxLength: 512 });
  return (performance.now() - t) / 1000;
}, { ps: pairs });
const { profile } = await cdp.send('Profiler.stop');
await context.close();
await server.close();

// Self time per function: each sample's leaf node.
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const dt = new Map();
for (let i = 0; i < profile.samples.length; i++) {
  const n = byId.get(profile.samples[i]);
  dt.set(n.id, (dt.get(n.id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const self = new Map();
let total = 0;
for (const [id, us] of dt) {
  const name = byId.get(id).callFrame.functionName || '(anonymous)';
  self.set(name, (self.get(name) ?? 0) + us);
  total += us;
}
// What each function is, by its (demangled) name: the integer GEMM's tiles
// and driver, activation quantization, the f32 GEMM (attention, f32
// layers), elementwise kernels, memory, the rest.
const groups = [
  ['integer GEMM tiles (int8::simd128)', /int8::simd128|kernels::int8::driver::tiles|int8.*tile/],
  ['activation quantization', /quantize_acts|int8::acts/],
  ['integer GEMM driver, panels', /int8::|Panels/],
  ['f32 GEMM (gemm crate: attention; f32 layers)', /gemm/],
  ['softmax, GELU (kernels::attention, activation)', /kernels::attention|kernels::activation|exp_fast|erf_fast|softmax/],
  ['memory (memcpy, memset, allocator)', /memcpy|memset|memmove|dlmalloc|alloc|realloc|dealloc/],
  ['Burn tensor ops (flex backend)', /burn|flex/],
  ['idle / JS / GC', /\(idle\)|\(program\)|\(garbage collector\)|^\(root\)/],
];
const grouped = new Map(groups.map(([g]) => [g, 0]));
let other = 0;
for (const [name, us] of self) {
  const g = groups.find(([, re]) => re.test(name));
  if (g) grouped.set(g[0], grouped.get(g[0]) + us);
  else other += us;
}
const pct = (us) => `${((100 * us) / total).toFixed(1)}%`;
console.log(`crossrank-wasm CPU ${dtype}, 1 thread, ${pairs.length} pairs: ${secs.toFixed(2)} s (${(pairs.length / secs).toFixed(3)} pairs/s), ${profile.samples.length} samples\n`);
console.log('| share | what |\n|---|---|');
for (const [g, us] of [...grouped].sort((a, b) => b[1] - a[1])) console.log(`| ${pct(us)} | ${g} |`);
console.log(`| ${pct(other)} | other |\n`);
console.log('| self | function |\n|---|---|');
for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`| ${pct(us)} | ${name.slice(0, 140)} |`);
