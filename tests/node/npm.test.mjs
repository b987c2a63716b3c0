// The packed npm tarball, installed into a temporary project, scores the
// committed fixtures on the CPU in wasm and matches FlagEmbedding 1.4.2.
// Needs `wasm-pack build` into npm/pkg first (scripts/test.sh does it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = join(root, 'tests', 'fixtures');

function installPackage() {
  const npmDir = join(root, 'npm');
  assert.ok(existsSync(join(npmDir, 'pkg', 'crossrank_wasm_bg.wasm')), 'npm/pkg missing: run wasm-pack build first');
  const work = mkdtempSync(join(tmpdir(), 'crossrank-npm-'));
  const out = execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: npmDir }).toString().trim();
  const tarball = join(work, out.split('\n').pop());
  const project = join(work, 'project');
  execFileSync('mkdir', ['-p', project]);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'probe', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--silent', '--no-audit', '--no-fund', tarball], { cwd: project });
  return { project, tarball };
}

function files(model) {
  const dir = join(fixtures, model);
  const out = {};
  for (const f of readdirSync(dir)) {
    if (f !== 'expected.json') out[f] = new Uint8Array(readFileSync(join(dir, f)));
  }
  return out;
}

const { project, tarball } = installPackage();
const { Reranker } = await import(pathToFileURL(join(project, 'node_modules', 'crossrank', 'index.js')).href);

test('tarball contains the wasm', () => {
  const list = execFileSync('tar', ['-tzf', tarball]).toString();
  assert.match(list, /package\/pkg\/crossrank_wasm_bg\.wasm/);
  assert.match(list, /package\/index\.d\.ts/);
});

for (const model of ['xlmr-tiny', 'bert-tiny', 'gemma-tiny']) {
  test(`${model} matches FlagEmbedding on cpu wasm`, async () => {
    const expected = JSON.parse(readFileSync(join(fixtures, model, 'expected.json'), 'utf8'));
    const r = await Reranker.load(files(model), { device: 'auto' });
    assert.equal(r.device, 'cpu');
    const tol = model === 'gemma-tiny' ? 1e-3 : 1e-4;
    for (const c of expected.cases.slice(0, 3)) {
      const opts = {
        maxLength: c.options.max_length,
        queryMaxLength: c.options.query_max_length,
        batchSize: c.options.batch_size,
        normalize: c.options.normalize,
        prompt: c.options.prompt,
      };
      const got = await r.computeScore(expected.pairs, opts);
      const want = Array.isArray(c.scores[0]) ? c.scores[0] : c.scores;
      const err = Math.max(...got.map((g, i) => Math.abs(g - want[i])));
      console.log(`${model}/${c.name}: max abs err ${err.toExponential(2)}`);
      assert.ok(err <= tol, `${model}/${c.name}: ${err} > ${tol}`);
    }
    const ranked = await r.rerank(expected.pairs[0][0], expected.pairs.map((p) => p[1]), { topK: 3, returnDocuments: true });
    assert.equal(ranked.length, 3);
    assert.ok(ranked[0].score >= ranked[1].score && ranked[1].score >= ranked[2].score);
    assert.equal(typeof ranked[0].document, 'string');
    await r.dispose();
  });
}

test('bad input rejects with a message', async () => {
  await assert.rejects(Reranker.load({ 'config.json': new TextEncoder().encode('{') }), /config\.json/);
  const r = await Reranker.load(files('bert-tiny'));
  await assert.rejects(r.computeScore([['only one']]), /pairs/);
  await assert.rejects(r.computeScore([['q', 'p']], { batchSize: 0 }), /batch_size/);
  await assert.rejects(Reranker.load(files('bert-tiny'), { device: 'tpu' }), /unknown device/);
});
