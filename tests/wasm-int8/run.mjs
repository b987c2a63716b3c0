// Run a wasm32-wasip1 program under Node's WASI: node run.mjs FILE.wasm
import { WASI } from 'node:wasi';
import fs from 'node:fs';
const wasi = new WASI({ version: 'preview1', args: ['wasmcheck'], env: {} });
const mod = await WebAssembly.compile(fs.readFileSync(process.argv[2]));
const inst = await WebAssembly.instantiate(mod, wasi.getImportObject());
wasi.start(inst);
