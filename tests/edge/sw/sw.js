// A module Service Worker that scores with the installed package (served
// at /crossrank/): `GET /sw-score?model=bert-tiny&device=auto` answers the
// max abs error per fixture case against FlagEmbedding's expected scores,
// the device and build used, and timings. Driven by ../edge.test.mjs.
import { Reranker, webgpuReachable } from '/crossrank/index.js';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (url.pathname === '/sw-score') e.respondWith(score(url.searchParams));
});

async function score(params) {
  const model = params.get('model');
  try {
    const t0 = performance.now();
    const r = await Reranker.load(`/fixtures/${model}/`, { device: params.get('device') ?? 'auto' });
    const loadMs = performance.now() - t0;
    const expected = await (await fetch(`/fixtures/${model}/expected.json`)).json();
    const errors = {};
    let firstScoreMs;
    for (const c of expected.cases.slice(0, 3)) {
      const got = await r.computeScore(expected.pairs, {
        maxLength: c.options.max_length,
        queryMaxLength: c.options.query_max_length ?? undefined,
        batchSize: c.options.batch_size,
        normalize: c.options.normalize,
        prompt: c.options.prompt ?? undefined,
      });
      firstScoreMs ??= performance.now() - t0;
      const want = Array.isArray(c.scores[0]) ? c.scores[0] : c.scores;
      errors[c.name] = Math.max(...got.map((g, i) => Math.abs(g - want[i])));
    }
    await r.dispose();
    return Response.json({ device: r.device, build: r.build, webgpuReachable: webgpuReachable(), loadMs, firstScoreMs, errors });
  } catch (e) {
    return Response.json({ error: String(e?.message ?? e), webgpuReachable: webgpuReachable() }, { status: 500 });
  }
}
