/** 'wasm' (transformers.js's name) is 'cpu'. */
export type Device = 'auto' | 'cpu' | 'wasm' | 'webgpu';

/**
 * A download's progress: a superset of transformers.js's events. `status`
 * is 'initiate' (a file is looked for), 'download' (it is not cached: a
 * request goes out), 'progress' (bytes arrived) or 'done'; `name` is the
 * model as given to `load`.
 */
export interface ProgressEvent {
  status: 'initiate' | 'download' | 'progress' | 'done';
  name: string;
  file: string;
  loaded: number;
  total?: number;
  /** Percent, when the size is known. */
  progress?: number;
}

export interface LoadOptions {
  /** 'auto' (default): WebGPU when an adapter passes a self-check against the CPU, else the CPU. */
  device?: Device;
  /**
   * How weights are stored on the device: 'f32', 'f16' (half the memory;
   * on a WebGPU adapter with shader-f16 the matrix products run in f16,
   * attention/normalization/scores stay f32), 'q8', 'int8' (q8's weights;
   * on the CPU the activations are 8-bit too: faster, slightly less
   * faithful), 'q4' (4-bit where it is safe, 8-bit elsewhere) or 'q4-all'
   * (smallest). On the CPU, q8/q4 linear layers multiply in integers
   * (8/4-bit weights, 16-bit activations); everything else computes in f32. Converts at load; a checkpoint written by
   * `crossrank quantize` is already converted and downloads small.
   */
  dtype?: 'f32' | 'f16' | 'q8' | 'int8' | 'q4' | 'q4-all' | 'fp32' | 'fp16' | 'int4';
  /** Download progress per file. */
  onProgress?: (p: ProgressEvent) => void;
  /**
   * Keep downloaded files (default true) so a second load does not download
   * again: in the Cache API where the runtime has one (browsers, Deno,
   * workers); in Node, Hub files in the Hugging Face cache on disk
   * (`HF_HOME`, shared with Python and the crossrank CLI; a branch resolved
   * once is reused — pass a commit or `cache: false` to ask the Hub again).
   */
  cache?: boolean;
  /** A Hub repo id's revision (branch, tag or commit); the same as `'owner/name@revision'`. Default 'main'. */
  revision?: string;
  /**
   * CPU threads (browsers). 'auto' (default): the cores the browser reports,
   * up to 8, where the page is cross-origin isolated (served with
   * `Cross-Origin-Opener-Policy: same-origin` and
   * `Cross-Origin-Embedder-Policy: require-corp` or `credentialless`), else 1.
   * More than 1 runs the threaded CPU build in a dedicated worker (the page's
   * thread never blocks; the worker ends when its last reranker is
   * disposed); asking for more than 1 where threads are not available is
   * an error. Deno: threads when a number is given ('auto' is 1 there: live
   * workers keep the process from exiting until `dispose()`). WebGPU
   * ignores it.
   */
  threads?: 'auto' | number;
}

export interface AdapterInfo {
  name: string;
  backend: string;
  /** A software rasterizer (SwiftShader, lavapipe): 'auto' never takes one. */
  software: boolean;
  shaderF16: boolean;
  maxBindingBytes: number;
}

export interface ScoreOptions {
  /** Tokens of a whole input (default 512; Qwen3-Reranker: 8192, its card's). */
  maxLength?: number;
  queryMaxLength?: number;
  batchSize?: number;
  /**
   * Also cap each forward pass at this many padded tokens (pairs × longest
   * pair): bounds GPU memory for long inputs. Scores do not change.
   */
  maxBatchTokens?: number;
  normalize?: boolean;
  /** Text before every query (FlagEmbedding's `query_instruction_for_rerank`); LLM rerankers default to "A: ", "" turns it off. */
  queryInstruction?: string;
  /** Text before every passage (`passage_instruction_for_rerank`); LLM rerankers default to "B: ". */
  passageInstruction?: string;
  /** LLM rerankers: the prompt after the pair; Qwen3-Reranker: the instruction. */
  prompt?: string;
  /** Layer-wise rerankers: scoring layers (several give one array per layer). */
  cutoffLayers?: number[];
  /**
   * Passages longer than maxLength allows: "truncate" (default, as
   * FlagEmbedding) cuts their end; "maxp" scores windows that fill
   * maxLength, the query in each, and keeps the best window's score.
   */
  longPassages?: 'truncate' | 'maxp';
  /** maxp: passage tokens between window starts (default: half a window). */
  passageStride?: number;
}

export interface RerankOptions extends ScoreOptions {
  topK?: number;
  returnDocuments?: boolean;
}

export interface Ranked {
  index: number;
  score: number;
  document?: string;
  /**
   * longPassages "maxp": the window of the document that scored, as string
   * indices (`document.slice(start, end)`), and how many were scored.
   */
  window?: { start: number; end: number; windows: number };
}

/**
 * A Hub repo id ('owner/name[@revision]'; `HF_ENDPOINT` names a mirror in
 * Node and Deno), a base URL of a checkpoint directory, a local directory
 * path or `file:` URL (Node, Deno), or the files themselves.
 */
export type CheckpointSource = string | URL | Record<string, Uint8Array | ArrayBuffer>;

export declare class Reranker {
  static load(source: CheckpointSource, options?: LoadOptions): Promise<Reranker>;
  readonly device: 'webgpu' | 'cpu';
  readonly deviceReason: string;
  /** The WebGPU adapter in use, or null on the CPU. */
  readonly adapter: AdapterInfo | null;
  /**
   * Which .wasm runs it: 'webgpu' (the full build, WebGPU + CPU) or 'cpu'
   * (the slim CPU-only build, fetched when `device: 'cpu'` is asked or when
   * WebGPU cannot be reached here; always in Cloudflare Workers) or
   * 'cpu-mt' (the threaded CPU build, in a worker: see `threads`).
   */
  readonly build: 'webgpu' | 'cpu' | 'cpu-mt';
  /** CPU threads this reranker runs on (1 unless the threaded build runs it). */
  readonly threads: number;
  computeScore(pairs: [string, string][], options?: ScoreOptions): Promise<number[] | number[][]>;
  rerank(query: string, docs: string[], options?: RerankOptions): Promise<Ranked[]>;
  /**
   * Bytes of wasm memory of this reranker's .wasm instance: its high-water
   * mark (linear memory never shrinks), shared by rerankers of one build.
   */
  memoryBytes(): number;
  dispose(): Promise<void>;
}

export interface EmbedOptions {
  /** The model's prompt of this name: 'query' (Qwen3-Embedding's "Instruct: ...\nQuery:"), 'document'. */
  promptName?: string;
  /** Text put before every text (instead of a named prompt). */
  prompt?: string;
  /** Tokens per text (default: the checkpoint's sentence-transformers config, else 512; Qwen3-Embedding 8192). */
  maxLength?: number;
  pooling?: 'mean' | 'cls' | 'last';
  normalize?: boolean;
  batchSize?: number;
}

/** A sentence embedder: sentence-transformers encoders, Qwen3-Embedding. */
export declare class Embedder {
  static load(source: CheckpointSource, options?: LoadOptions): Promise<Embedder>;
  readonly device: 'webgpu' | 'cpu';
  readonly deviceReason: string;
  readonly adapter: AdapterInfo | null;
  readonly build: 'webgpu' | 'cpu' | 'cpu-mt';
  readonly threads: number;
  /** One vector per text, in input order. */
  embed(texts: string[], options?: EmbedOptions): Promise<number[][]>;
  /** The model's prompt named `name`, or undefined. */
  prompt(name: string): Promise<string | undefined>;
  memoryBytes(): number;
  dispose(): Promise<void>;
}

/** Remove every model file crossrank cached with the Cache API. */
export declare function clearCache(): Promise<void>;

/** Whether CPU threads are possible here (a cross-origin isolated browser context, or Deno). */
export declare function threadsAvailable(): boolean;

/** Whether WebGPU is reachable here (navigator.gpu in a page or a worker); false in Deno and workerd. */
export declare function webgpuReachable(): boolean;
