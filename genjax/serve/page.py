"""The HTML of ``genjax serve``: one page (plain HTML and a little JavaScript, no build step) and
the run page template."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>genjax serve</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.2em; max-width: 1100px; color: #222; }
form { display: grid; grid-template-columns: 10em 1fr; gap: .35em .8em; max-width: 640px; }
label { text-align: right; padding-top: .2em; } input[type=text] { width: 100%; }
#error { color: #b00020; min-height: 1.3em; margin: .5em 0; } .hidden { display: none; }
#result { display: flex; gap: 1.2em; margin-top: 1em; } #grid { image-rendering: pixelated; border: 1px solid #ccc; max-width: 420px; }
#gallery { display: flex; flex-wrap: wrap; gap: .6em; } #gallery figure { margin: 0; width: 150px; font-size: 75%; }
#gallery img { width: 150px; image-rendering: pixelated; } code { background: #f3f3f3; padding: .2em; word-break: break-all; }
table td { padding: 0 .6em 0 0; vertical-align: top; }
</style></head>
<body>
<h1>genjax serve</h1>
<p>Runs: <span id="runlinks"></span></p>
<form id="form">
  <label for="run">model</label><select id="run" name="run"></select>
  <label for="prompt">prompt</label><input id="prompt" name="prompt" type="text" placeholder="a thick 7">
  <label for="negative_prompt" class="neg">negative prompt</label>
  <input id="negative_prompt" name="negative_prompt" type="text" class="neg" placeholder="(needs guidance)">
  <label for="sampler">sampler</label><select id="sampler" name="sampler"><option value="">(the model's)</option></select>
  <label for="steps">steps</label><input id="steps" name="steps" type="number" min="1" placeholder="(the sampler's)">
  <label for="guidance">guidance</label><input id="guidance" name="guidance" type="number" min="0" step="0.5" placeholder="(none)">
  <label for="num">images</label><input id="num" name="num" type="number" min="1" value="4">
  <label for="seed">seed</label><input id="seed" name="seed" type="number" min="0" placeholder="(random)">
  <label for="variations_of" class="var">variations of</label>
  <span class="var"><input id="variations_of" name="variations_of" type="text" placeholder="test:N">
    or <input id="image" type="file" accept="image/png"></span>
  <span></span><button id="submit" type="submit">Generate</button>
</form>
<div id="error" role="alert"></div>
<div id="progress" class="hidden"><progress id="bar" max="1" value="0"></progress> <span id="progresstext"></span></div>
<div id="result" class="hidden">
  <img id="grid" alt="generated images">
  <div><table id="settings"></table>
    <p><code id="command"></code></p><button id="copy" type="button">Copy the command line</button></div>
</div>
<h2>Gallery</h2><div id="gallery"></div>
<script>
const $ = (id) => document.getElementById(id);
let runs = {};
let upload = null;
function showFields() {
  const r = runs[$('run').value] || {};
  document.querySelectorAll('.neg').forEach(e => e.classList.toggle('hidden', !r.negative_prompt));
  document.querySelectorAll('.var').forEach(e => e.classList.toggle('hidden', !r.variations));
  $('num').max = r.max_images || 16; $('steps').max = r.max_steps || 1000;
}
async function loadRuns() {
  const list = await (await fetch('/api/runs')).json();
  for (const r of list) {
    runs[r.name] = r;
    $('run').add(new Option(`${r.name} (${r.model}, step ${r.step})`, r.name));
    const a = document.createElement('a'); a.href = '/runs/' + encodeURIComponent(r.name); a.textContent = r.name + ' ';
    $('runlinks').append(a);
  }
  for (const s of (list[0] || {}).samplers || []) $('sampler').add(new Option(s, s));
  showFields();
}
function request() {
  const body = {run: $('run').value, num: Number($('num').value)};
  for (const f of ['prompt', 'negative_prompt', 'sampler', 'variations_of']) {
    const el = $(f); if (el.value.trim() !== '' && !el.closest('.hidden')) body[f] = el.value.trim();
  }
  for (const f of ['steps', 'guidance', 'seed']) if ($(f).value !== '') body[f] = Number($(f).value);
  if (upload && runs[body.run].variations) body.image = upload;
  return body;
}
function showResult(job) {
  $('grid').src = job.grid;
  $('settings').innerHTML = '';
  for (const [k, v] of Object.entries(job.settings)) {
    const row = $('settings').insertRow(); row.insertCell().textContent = k; row.insertCell().textContent = v;
  }
  $('result').dataset.seed = job.settings.seed; $('result').dataset.job = job.id;
  $('command').textContent = job.command;
  $('result').classList.remove('hidden');
}
async function poll(id) {
  while (true) {
    const job = await (await fetch('/api/jobs/' + id)).json();
    if (job.state === 'queued') { $('progresstext').textContent = `queued (${job.position} ahead)`; $('bar').removeAttribute('value'); }
    else if (job.state === 'running') {
      if (job.expected_s) { $('bar').value = Math.min(0.95, job.elapsed_s / job.expected_s); $('progresstext').textContent = `sampling ${job.elapsed_s.toFixed(1)} s of about ${job.expected_s.toFixed(1)} s`; }
      else { $('bar').removeAttribute('value'); $('progresstext').textContent = `compiling the sampler for this shape (${job.elapsed_s.toFixed(1)} s)`; }
    } else if (job.state === 'done') { $('progress').classList.add('hidden'); showResult(job); loadGallery(); return; }
    else { $('progress').classList.add('hidden'); $('error').textContent = job.error || 'failed'; return; }
    await new Promise(r => setTimeout(r, 250));
  }
}
$('form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('error').textContent = '';
  const resp = await fetch('/api/generate', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(request())});
  const out = await resp.json();
  if (!resp.ok) { $('error').textContent = out.error; if (out.field && $(out.field)) $(out.field).focus(); return; }
  $('progress').classList.remove('hidden');
  poll(out.id);
});
$('image').addEventListener('change', () => {
  const f = $('image').files[0]; if (!f) { upload = null; return; }
  const reader = new FileReader(); reader.onload = () => { upload = reader.result; }; reader.readAsDataURL(f);
});
$('copy').addEventListener('click', async () => {
  const text = $('command').textContent;
  try { await navigator.clipboard.writeText(text); $('copy').textContent = 'Copied'; }
  catch (e) { const r = document.createRange(); r.selectNodeContents($('command')); getSelection().removeAllRanges(); getSelection().addRange(r); $('copy').textContent = 'Selected: press Ctrl-C'; }
  setTimeout(() => { $('copy').textContent = 'Copy the command line'; }, 2000);
});
async function loadGallery() {
  const items = await (await fetch('/api/gallery')).json();
  $('gallery').innerHTML = '';
  for (const job of items) {
    const fig = document.createElement('figure'); const img = document.createElement('img'); img.src = job.grid; img.title = job.command;
    const cap = document.createElement('figcaption');
    cap.textContent = `${job.run}: ${job.settings.prompt || job.settings.variations_of || '(no prompt)'}, seed ${job.settings.seed}`;
    fig.append(img, cap); fig.addEventListener('click', () => showResult(job)); $('gallery').append(fig);
  }
}
$('run').addEventListener('change', showFields);
loadRuns(); loadGallery(); setInterval(loadGallery, 5000);
</script>
</body></html>
"""

RUN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{name}: genjax run</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 1.2em; }} img {{ max-width: 100%; image-rendering: pixelated; }}
pre {{ background: #f6f6f6; padding: .6em; overflow: auto; }} figure {{ display: inline-block; margin: .5em; }}</style>
</head><body>
<p><a href="/">back to the page</a></p>
<h1>{name}</h1><p>model {model}, step {step}, <code>{run_dir}</code></p>
<h2>config.json</h2><pre id="config">{config}</pre>
<h2>Curves and sample grids</h2>{pictures}
<h2>Compare reports</h2>{reports}
</body></html>
"""
