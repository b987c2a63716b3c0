// The demo page's main thread: UI only. Loading and scoring run in
// worker.js so the page stays responsive.
import { SAMPLE_DOCS } from './sample-docs.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// The model field's suggestions, with what a visitor downloads (the
// published model.safetensors; q8/q4 are quantized as it arrives, so the
// download is the same and the memory smaller) and the weights picked
// when one is chosen.
const SUGGESTIONS = [
  { id: 'BAAI/bge-reranker-base', size: '1.11 GB (f32)', dtype: 'f32' },
  { id: 'Qwen/Qwen3-Reranker-0.6B', size: '1.19 GB (bf16); held as q8, ~0.75 GB', dtype: 'q8' },
  { id: 'Alibaba-NLP/gte-reranker-modernbert-base', size: '0.60 GB (f32)', dtype: 'f32' },
  { id: 'cross-encoder/ms-marco-MiniLM-L6-v2', size: '91 MB (f32)', dtype: 'f32' },
  { id: 'BAAI/bge-reranker-v2-m3', size: '2.27 GB (f32); held as q8, ~0.6 GB', dtype: 'q8' },
];
$('models').replaceChildren(
  ...SUGGESTIONS.map((m) => Object.assign(document.createElement('option'), { value: m.id, label: `${m.id} — download ${m.size}` })),
);
function describeModel() {
  const m = SUGGESTIONS.find((s) => s.id === $('model').value.trim());
  $('size').textContent = m ? `download ${m.size}` : '';
  return m;
}
$('model').oninput = () => {
  const m = describeModel();
  if (m) $('dtype').value = m.dtype;
};
$('model').value = params.get('model') ?? SUGGESTIONS[0].id;
$('dtype').value = params.get('dtype') ?? describeModel()?.dtype ?? 'f32';
$('device').value = params.get('device') ?? 'auto';
$('docs').value = SAMPLE_DOCS.join('\n\n');
if (params.get('q')) $('query').value = params.get('q');

const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
let busy = false;
let lastDevice = '';

function documents() {
  return $('docs').value.split(/\n\s*\n/).map((d) => d.trim()).filter(Boolean);
}

function setBusy(b) {
  busy = b;
  $('search').disabled = b;
  $('load').disabled = b;
}

function status(text) {
  $('status').textContent = text;
}

function render(msg, docs) {
  const ol = $('results');
  ol.replaceChildren();
  for (const r of msg.results) {
    const li = document.createElement('li');
    const meta = document.createElement('div');
    meta.className = 'meta';
    const score = document.createElement('span');
    score.className = 'score';
    score.textContent = r.score.toFixed(4);
    const moved = r.bm25Rank - r.rank;
    const move = document.createElement('span');
    move.className = moved > 0 ? 'moved-up' : moved < 0 ? 'moved-down' : '';
    move.textContent = moved > 0 ? ` ▲${moved}` : moved < 0 ? ` ▼${-moved}` : '';
    meta.append('#', String(r.rank + 1), ' · score ', score, ` · BM25 #${r.bm25Rank + 1} (${r.bm25.toFixed(2)})`, move, ` · doc ${r.index + 1}`);
    const text = document.createElement('div');
    text.textContent = docs[r.index];
    li.append(meta, text);
    ol.append(li);
  }
}

let pendingDocs = [];
worker.onmessage = ({ data: m }) => {
  if (m.type === 'progress') {
    $('progress').hidden = false;
    $('progress').querySelector('progress').value = m.total ? m.loaded / m.total : 0;
    $('progress-text').textContent = `${m.file} ${(m.loaded / 1e6).toFixed(1)} MB`;
  } else if (m.type === 'loaded') {
    $('progress').hidden = true;
    lastDevice = m.device;
    status(`model loaded in ${(m.ms / 1000).toFixed(1)} s on ${m.device}${m.adapter ? ` (${m.adapter})` : ''}${m.threads > 1 ? `, ${m.threads} threads` : ''} — ${m.reason}`);
    if (!pendingDocs.length) setBusy(false);
  } else if (m.type === 'results') {
    render(m, pendingDocs);
    status(
      `device ${m.device}${m.threads > 1 ? ` (${m.threads} threads)` : ''} · BM25 ${m.bm25Ms.toFixed(1)} ms over ${pendingDocs.length} docs · ` +
        `rerank ${m.results.length} in ${m.rerankMs.toFixed(0)} ms`,
    );
    pendingDocs = [];
    setBusy(false);
  } else if (m.type === 'error') {
    $('progress').hidden = true;
    status(`error: ${m.message}`);
    pendingDocs = [];
    setBusy(false);
  }
};

$('load').onclick = () => {
  setBusy(true);
  status('loading…');
  worker.postMessage({ type: 'load', model: $('model').value.trim(), device: $('device').value, dtype: $('dtype').value });
};

$('form').onsubmit = (e) => {
  e.preventDefault();
  const query = $('query').value.trim();
  const docs = documents();
  if (busy || !query || !docs.length) return;
  setBusy(true);
  pendingDocs = docs;
  status(lastDevice ? 'reranking…' : 'loading the model, then reranking…');
  worker.postMessage({
    type: 'search',
    model: $('model').value.trim(),
    device: $('device').value,
    dtype: $('dtype').value,
    query,
    docs,
    k: Number($('k').value) || 10,
    maxLength: 512,
  });
};

$('files').onchange = async (e) => {
  const texts = await Promise.all([...e.target.files].map((f) => f.text()));
  $('docs').value = texts.map((t) => t.trim()).join('\n\n');
};
