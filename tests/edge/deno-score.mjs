// Run by edge.test.mjs under Deno (npm `deno`), in a project that has the
// packed tarball installed:
//   deno run -A --node-modules-dir=manual deno-score.mjs SPECIFIER MODEL_URL EXPECTED_JSON [DTYPE] [DEVICE] [THREADS]
// SPECIFIER is `npm:crossrank` or a plain URL of the package's index.js.
// Prints one JSON line: device, build, timings, max abs error per case, and
// whether the Cache API was there; or `{"error": message}` on a rejection.
// It disposes the reranker and returns: the process must then exit by
// itself (a threaded reranker's workers end at dispose).
const [spec, modelUrl, expectedPath, dtype = 'f32', device = 'auto', threadsArg = 'auto'] = Deno.args;
const threads = threadsArg === 'auto' ? 'auto' : Number(threadsArg);
const t0 = performance.now();
try {
  const { Reranker } = await import(spec);
  const tImport = performance.now() - t0;
  const expected = JSON.parse(await Deno.readTextFile(expectedPath));
  const r = await Reranker.load(modelUrl, { device, dtype, threads });
  const tLoad = performance.now() - t0;
  const errors = {};
  let tFirst;
  for (const c of expected.cases.slice(0, 3)) {
    const got = await r.computeScore(expected.pairs, {
      maxLength: c.options.max_length,
      queryMaxLength: c.options.query_max_length,
      batchSize: c.options.batch_size,
      normalize: c.options.normalize,
      prompt: c.options.prompt,
    });
    tFirst ??= performance.now() - t0;
    const want = Array.isArray(c.scores[0]) ? c.scores[0] : c.scores;
    errors[c.name] = Math.max(...got.map((g, i) => Math.abs(g - want[i])));
  }
  const out = { device: r.device, reason: r.deviceReason, build: r.build, threads: r.threads, caches: typeof caches !== 'undefined', importMs: tImport, loadMs: tLoad, firstScoreMs: tFirst, errors };
  await r.dispose();
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify({ error: String(e?.message ?? e) }));
}
