// The packed npm tarball, installed into a temporary project: what a user
// gets from `npm install crossrank`. Shared by the Node, edge (Deno, workerd,
// Service Worker) tests. Needs both .wasm builds (scripts/build-wasm.sh).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** `npm pack` npm/ and `npm install` the tarball into a new project: `{ project, tarball, pkgDir }`. */
export function installPackage() {
  const npmDir = join(root, 'npm');
  for (const p of ['pkg', 'pkg-cpu']) {
    assert.ok(existsSync(join(npmDir, p, 'crossrank_wasm_bg.wasm')), `npm/${p} missing: run scripts/build-wasm.sh first`);
  }
  const work = mkdtempSync(join(tmpdir(), 'crossrank-npm-'));
  const out = execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: npmDir }).toString().trim();
  const tarball = join(work, out.split('\n').pop());
  const project = join(work, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'probe', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--silent', '--no-audit', '--no-fund', tarball], { cwd: project });
  return { project, tarball, pkgDir: join(project, 'node_modules', 'crossrank') };
}
