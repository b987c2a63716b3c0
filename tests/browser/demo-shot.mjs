// The RAG demo (web/) with a model you name, for a screenshot: serves the
// repository (cross-origin isolated, so the CPU runs on threads), opens
// web/?model=PATH&dtype=DTYPE&device=DEVICE in headless Chromium, asks one
// query and saves the page. Not a test: a way to look at a real-shaped
// model in the demo (benches/new-models makes a Qwen3-Reranker-0.6B shape).
//   node tests/browser/demo-shot.mjs /benches/models/qwen3-reranker-0.6b-shape/ q8 cpu OUT.png
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { serve } from './server.mjs';

const [model, dtype = 'q8', device = 'cpu', out = 'demo.png', query = 'what is a panda?'] = process.argv.slice(2);
const server = await serve({ isolated: true });
const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'crossrank-chromium-')), {
  executablePath: process.env.CROSSRANK_CHROMIUM ?? '/usr/bin/chromium',
  headless: false,
  args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--no-first-run'],
  viewport: { width: 1100, height: 1400 },
});
try {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[pageerror] ${e.message}`));
  const t0 = Date.now();
  await page.goto(`${server.url}/web/?model=${encodeURIComponent(model)}&dtype=${dtype}&device=${device}`);
  await page.fill('#query', query);
  await page.click('#search');
  await page.waitForSelector('#results li', { timeout: 1_800_000 });
  console.log(`${((Date.now() - t0) / 1000).toFixed(0)} s; status: ${await page.textContent('#status')}`);
  console.log((await page.$$eval('#results li .meta', (m) => m.map((x) => x.textContent))).join('\n'));
  await page.screenshot({ path: out, fullPage: true });
  console.log(`screenshot ${out}`);
} finally {
  await context.close();
  await server.close();
}
