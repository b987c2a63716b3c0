// The demo page's main thread: UI only. Loading and scoring run in
// worker.js so the page stays responsive.
import { SAMPLE_DOCS } from './sample-docs.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
$('model').value = params.get('model') ?? 'BAAI/bge-reranker-base';
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
  worker.postMessage({ type: 'load', model: $('model').value.trim(), device: $('device').value });
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
