// Run a wasm32-wasip1 program under Node's WASI: node run.mjs FILE.wasm [ARGS...]
import { WASI } from 'node:wasi';
import fs from 'node:fs';
const wasi = new WASI({ version: 'preview1', args: ['int8-cross', ...process.argv.slice(3)], env: Object.fromEntries(['INT8_SPEED', 'INT8_M', 'CROSSRANK_INT8'].filter((k) => process.env[k]).map((k) => [k, process.env[k]])), returnOnExit: true });
const mod = await WebAssembly.compile(fs.readFileSync(process.argv[2]));
const inst = await WebAssembly.instantiate(mod, wasi.getImportObject());
const code = wasi.start(inst);
if (code !== 0) process.exit(code);
