// Runs the relaxed-SIMD kernel comparison (see Cargo.toml) in Node and in
// headless Chromium: node bench.mjs FILE.wasm
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const wasmFile = process.argv[2];
const bytes = fs.readFileSync(wasmFile);

// The same code in both engines: instantiate, then each kernel's GMAC/s,
// the best of 20 rounds that take the kernels in turn (this VM's
// neighbours come and go: a round is ~1 s).
async function measure(bytes) {
  const { instance } = await WebAssembly.instantiate(bytes, { env: { now: () => performance.now() } });
  instance.exports.init();
  const kernels = [
    ['SIMD128 i32x4.dot_i16x8_s on i8 panels, one load + extend_low/high (shipped), 4 rows', 0, 4],
    ['SIMD128 i32x4.dot_i16x8_s on i8 panels, two i16x8.load8x8_s (shipped until 2026-12-07), 4 rows', 3, 4],
    ['SIMD128 i32x4.dot_i16x8_s on i16 panels (before i8 panels), 4 rows', 2, 4],
    ...[4, 5, 6].map((r) => [`relaxed i32x4.relaxed_dot_i8x16_i7x16_add_s, ${r} rows`, 1, r]),
    ['the shipped tile driven as driver.rs: rows in chunks of 48, k in chunks of 256 accumulated through the output', 4, 4],
    ['the same, k not chunked', 5, 4],
    ['the same (k in chunks of 256), every (rows, block) tile inlined into one dispatching function as tiles! does', 6, 4],
  ];
  const best = kernels.map(() => 0);
  for (let round = 0; round < 20; round++) {
    kernels.forEach(([, k, r], i) => { best[i] = Math.max(best[i], instance.exports.run(k, r)); });
  }
  return kernels.map(([name], i) => [name, best[i]]);
}

const print = (engine, rows) => {
  for (const [name, g] of rows) console.log(`${engine}\t${name}\t${g.toFixed(1)} GMAC/s\t${(g / rows[0][1]).toFixed(2)}x`);
};

print(`node ${process.version}`, await measure(bytes));

const here = path.dirname(fileURLToPath(import.meta.url));
const { chromium } = await import(path.join(here, '../../tests/browser/node_modules/playwright-core/index.mjs'));
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage();
const version = browser.version();
const rows = await page.evaluate(async ([b64, src]) => {
  const bin = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return (0, eval)(`(${src})`)(bin);
}, [bytes.toString('base64'), measure.toString()]);
print(`chromium ${version}`, rows);
await browser.close();
