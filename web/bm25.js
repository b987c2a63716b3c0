// Okapi BM25 (k1 = 1.2, b = 0.75) over Unicode word tokens: the first
// stage that picks candidates for the cross-encoder.
export function tokenize(text) {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

export class Bm25 {
  constructor(docs, { k1 = 1.2, b = 0.75 } = {}) {
    this.k1 = k1;
    this.b = b;
    this.tf = docs.map((d) => {
      const m = new Map();
      for (const t of tokenize(d)) m.set(t, (m.get(t) ?? 0) + 1);
      return m;
    });
    this.len = docs.map((_, i) => [...this.tf[i].values()].reduce((a, c) => a + c, 0));
    this.avg = this.len.reduce((a, c) => a + c, 0) / Math.max(1, docs.length);
    this.df = new Map();
    for (const m of this.tf) for (const t of m.keys()) this.df.set(t, (this.df.get(t) ?? 0) + 1);
  }

  /** The `k` best documents for `query`: [{ index, score }], best first. */
  search(query, k) {
    const n = this.tf.length;
    const terms = [...new Set(tokenize(query))];
    const scored = this.tf.map((m, i) => {
      let s = 0;
      for (const t of terms) {
        const f = m.get(t);
        if (!f) continue;
        const df = this.df.get(t);
        const idf = Math.log(1 + (n - df + 0.5) / (df + 0.5));
        s += (idf * f * (this.k1 + 1)) / (f + this.k1 * (1 - this.b + (this.b * this.len[i]) / this.avg));
      }
      return { index: i, score: s };
    });
    return scored.sort((a, b) => b.score - a.score || a.index - b.index).slice(0, k);
  }
}
