export type Device = 'auto' | 'cpu' | 'webgpu';

export interface LoadOptions {
  device?: Device;
  onProgress?: (p: { file: string; loaded: number; total?: number }) => void;
}

export interface ScoreOptions {
  maxLength?: number;
  queryMaxLength?: number;
  batchSize?: number;
  normalize?: boolean;
  /** LLM rerankers: the prompt after the pair. */
  prompt?: string;
  /** Layer-wise rerankers: scoring layers (several give one array per layer). */
  cutoffLayers?: number[];
}

export interface RerankOptions extends ScoreOptions {
  topK?: number;
  returnDocuments?: boolean;
}

export interface Ranked {
  index: number;
  score: number;
  document?: string;
}

export type CheckpointSource = string | URL | Record<string, Uint8Array | ArrayBuffer>;

export declare class Reranker {
  static load(source: CheckpointSource, options?: LoadOptions): Promise<Reranker>;
  readonly device: 'webgpu' | 'cpu';
  readonly deviceReason: string;
  computeScore(pairs: [string, string][], options?: ScoreOptions): Promise<number[] | number[][]>;
  rerank(query: string, docs: string[], options?: RerankOptions): Promise<Ranked[]>;
  dispose(): Promise<void>;
}
