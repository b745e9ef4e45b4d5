/* laari reviewer page and pools page. Plain JS, no build step, no external assets. */
"use strict";

(function () {
  const I18N = {
    fi: {
      "nav.review": "Arviointi", "nav.pools": "Laarit", "nav.api": "API",
      "key.label": "API-avain", "key.placeholder": "arvioijan avain",
      "input.heading": "Hankkeen kuvaus",
      "input.help": "Liitä hankkeen nimi ja tiivistelmä tai lataa tiedosto (.txt tai .docx). Saat ehdotuksen laarista, teemoista ja sopivuudesta perusteluineen.",
      "input.title": "Hankkeen nimi", "input.id": "Hanketunnus (valinnainen)", "input.description": "Kuvaus",
      "input.placeholder": "Hankkeessa kehitetään…", "input.file": "Lataa tiedosto", "input.submit": "Ehdota laari",
      "input.chars": "{n} merkkiä", "input.empty": "Kirjoita tai liitä ensin hankkeen kuvaus.",
      "input.working": "Lasketaan…", "input.loaded": "Tiedosto luettu: {name} ({n} merkkiä)",
      "result.suggestion": "Ehdotettu laari", "result.out": "Ei sovi mihinkään laariin (teeman ulkopuolella)",
      "result.runner_up": "Toiseksi todennäköisin: {laari} ({p}), ero {m} prosenttiyksikköä",
      "result.nearest": "Lähin laari silti: {laari}",
      "result.fit": "Teemaan kuulumisen todennäköisyys {fit}; {pct}",
      "result.percentile": "samankaltaisuus laarin keskipisteeseen on {p}. persentiilissä laarin hankkeista",
      "result.probabilities": "Todennäköisyydet", "result.out_prob": "Teeman ulkopuolella: {p}",
      "result.tags": "Teemat", "result.terms": "Ratkaisevat sanat", "result.text": "Kuvaus korostettuna",
      "result.legend_sentence": "tukeva lause", "result.legend_term": "ratkaiseva sana",
      "result.similar": "Samankaltaiset hankkeet", "result.no_tags": "ei teemoja",
      "verdict.typical": "tyypillinen", "verdict.borderline": "rajatapaus", "verdict.outlier": "poikkeava",
      "feedback.heading": "Arvio", "feedback.reviewer": "Arvioija (valinnainen)",
      "feedback.comment": "Kommentti (valinnainen)", "feedback.accept": "Hyväksy ehdotus",
      "feedback.correct": "Korjaa…", "feedback.laari": "Oikea laari", "feedback.tags": "Oikeat teemat",
      "feedback.save": "Tallenna korjaus", "feedback.saved": "Palaute tallennettu (nro {id}).",
      "feedback.saving": "Tallennetaan…",
      "error.network": "Palvelimeen ei saatu yhteyttä.", "error.key": "Anna arvioijan API-avain sivun yläreunassa.",
      "footer.model": "Malli",
      "pools.heading": "Laarit ja niiden yhtenäisyys",
      "pools.help": "Jokaiselle laarille yksi arviointimittari. Yhtenäisyys = jäsenten keskimääräinen samankaltaisuus laarin keskipisteeseen; erottuvuus = kuinka paljon lähempänä jäsenet ovat omaa kuin lähimmän laarin keskipistettä.",
      "pools.laari": "Laari", "pools.assessment": "Arviointimittari", "pools.size": "Koko",
      "pools.cohesion": "Yhtenäisyys", "pools.nearest": "Lähin laari (erottuvuus)", "pools.keywords": "Avainsanat",
      "pools.map": "Koulutushankkeiden kartta",
      "pools.map_help": "Jokainen piste on koulutusaineiston hanke (pääkomponenttianalyysi), väri kertoo laarin; isot merkit ovat laarien keskipisteet.",
      "pools.representatives": "Tyypillisimmät hankkeet", "pools.outliers": "Poikkeavimmat hankkeet",
      "pools.closer_to": "lähempänä laaria {laari}", "pools.misfits": "{n} jäsentä on lähempänä toisen laarin keskipistettä",
      "pools.out_of_theme": "teeman ulkopuolella", "pools.explained": "Selitetty vaihtelu: {a} + {b}",
    },
    en: {
      "nav.review": "Review", "nav.pools": "Pools", "nav.api": "API",
      "key.label": "API key", "key.placeholder": "reviewer key",
      "input.heading": "Project description",
      "input.help": "Paste the project's title and summary or upload a file (.txt or .docx). You get a suggested pool (laari), tags and fit, with the reasons.",
      "input.title": "Project title", "input.id": "Project id (optional)", "input.description": "Description",
      "input.placeholder": "The project develops…", "input.file": "Upload a file", "input.submit": "Suggest a laari",
      "input.chars": "{n} characters", "input.empty": "Write or paste a project description first.",
      "input.working": "Working…", "input.loaded": "File read: {name} ({n} characters)",
      "result.suggestion": "Suggested laari", "result.out": "Fits no laari (out of the theme)",
      "result.runner_up": "Runner-up: {laari} ({p}), margin {m} percentage points",
      "result.nearest": "Nearest laari anyway: {laari}",
      "result.fit": "Probability of belonging to the theme {fit}; {pct}",
      "result.percentile": "similarity to the laari's centroid is at the {p}th percentile of its projects",
      "result.probabilities": "Probabilities", "result.out_prob": "Out of theme: {p}",
      "result.tags": "Tags", "result.terms": "Deciding words", "result.text": "Description, highlighted",
      "result.legend_sentence": "supporting sentence", "result.legend_term": "deciding word",
      "result.similar": "Similar projects", "result.no_tags": "no tags",
      "verdict.typical": "typical", "verdict.borderline": "borderline", "verdict.outlier": "outlier",
      "feedback.heading": "Review", "feedback.reviewer": "Reviewer (optional)",
      "feedback.comment": "Comment (optional)", "feedback.accept": "Accept the suggestion",
      "feedback.correct": "Correct…", "feedback.laari": "Correct laari", "feedback.tags": "Correct tags",
      "feedback.save": "Save the correction", "feedback.saved": "Feedback saved (no. {id}).",
      "feedback.saving": "Saving…",
      "error.network": "Could not reach the server.", "error.key": "Enter a reviewer API key at the top of the page.",
      "footer.model": "Model",
      "pools.heading": "Pools and how homogeneous they are",
      "pools.help": "One assessment metric per pool. Cohesion = members' mean similarity to the pool's centroid; separation = how much closer the members are to their own centroid than to the nearest pool's.",
      "pools.laari": "Laari", "pools.assessment": "Assessment metric", "pools.size": "Size",
      "pools.cohesion": "Cohesion", "pools.nearest": "Nearest pool (separation)", "pools.keywords": "Keywords",
      "pools.map": "Map of the training projects",
      "pools.map_help": "Each dot is a training project (principal component analysis), coloured by laari; large marks are the pools' centroids.",
      "pools.representatives": "Most typical projects", "pools.outliers": "Least typical projects",
      "pools.closer_to": "closer to {laari}", "pools.misfits": "{n} members are closer to another pool's centroid",
      "pools.out_of_theme": "out of theme", "pools.explained": "Explained variance: {a} + {b}",
    },
  };
  const COLORS = ["#1b6ca8", "#d1495b", "#2a9d8f", "#e9a03b", "#7b4fa0", "#5c946e", "#b5651d", "#4a4e69"];
  const OUT_COLOR = "#9aa0a6";

  let lang = localStorage.getItem("laari.lang") || "fi";
  let taxonomy = null;

  function t(key, vars) {
    let s = (I18N[lang] && I18N[lang][key]) || I18N.fi[key] || key;
    if (vars) for (const [k, v] of Object.entries(vars)) s = s.split("{" + k + "}").join(String(v));
    return s;
  }
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c != null) node.append(c);
    return node;
  }
  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }
  const pct = (p) => (p == null ? "–" : (100 * p).toFixed(0) + " %");

  function applyI18n() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-i18n]").forEach((n) => { n.textContent = t(n.dataset.i18n); });
    document.querySelectorAll("[data-i18n-placeholder]").forEach((n) => { n.placeholder = t(n.dataset.i18nPlaceholder); });
    const toggle = $("lang-toggle");
    if (toggle) toggle.textContent = lang === "fi" ? "EN" : "FI";
  }

  function laariName(id) {
    if (!taxonomy) return id;
    const all = [...taxonomy.laarit, taxonomy.out_of_theme];
    const l = all.find((x) => x.id === id);
    return l ? (lang === "fi" ? l.name_fi : l.name_en) : id;
  }
  function tagName(id) {
    if (!taxonomy) return id;
    const tg = taxonomy.tags.find((x) => x.id === id);
    return tg ? (lang === "fi" ? tg.name_fi : tg.name_en) : id;
  }
  function colorOf(id) {
    if (taxonomy && id === taxonomy.out_of_theme.id) return OUT_COLOR;
    const ids = taxonomy ? taxonomy.laarit.map((l) => l.id) : [];
    const i = ids.indexOf(id);
    return i < 0 ? OUT_COLOR : COLORS[i % COLORS.length];
  }

  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    const key = sessionStorage.getItem("laari.key");
    if (key) opts.headers["X-API-Key"] = key;
    let resp;
    try { resp = await fetch(path, opts); } catch (e) { throw new Error(t("error.network")); }
    const type = resp.headers.get("content-type") || "";
    const body = type.includes("json") ? await resp.json() : await resp.text();
    if (!resp.ok) {
      let msg = (body && body.detail) ? body.detail : ("HTTP " + resp.status);
      if (resp.status === 401) msg += " — " + t("error.key");
      const err = new Error(msg);
      err.status = resp.status;
      throw err;
    }
    return body;
  }

  async function loadCommon() {
    try {
      const ready = await api("/ready");
      $("model-version").textContent = ready.model_version || ready.status;
    } catch (e) { $("model-version").textContent = e.message; }
    try { taxonomy = await api("/v1/taxonomy"); } catch (e) { taxonomy = null; }
  }

  // ------------------------------------------------------------------ review page
  let last = null; // {request, prediction}

  function showError(id, message) {
    const n = $(id);
    n.textContent = message || "";
    n.hidden = !message;
  }

  function escapeRe(s) { return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }

  /* Ranges [start, end, kind] of the supporting sentences and the deciding words in the original text. */
  function highlightRanges(text, hl) {
    const ranges = [];
    for (const s of (hl && hl.sentences) || []) {
      const tokens = s.split(/\s+/).filter(Boolean).map(escapeRe);
      if (!tokens.length) continue;
      const m = new RegExp(tokens.join("\\s+"), "u").exec(text);
      if (m) ranges.push([m.index, m.index + m[0].length, "sent"]);
    }
    const forms = [];
    for (const term of (hl && hl.terms) || []) for (const f of term.forms) forms.push(f);
    if (forms.length) {
      forms.sort((a, b) => b.length - a.length);
      const re = new RegExp("(?<![\\p{L}\\p{N}])(" + forms.map(escapeRe).join("|") + ")(?![\\p{L}\\p{N}])", "giu");
      let m;
      while ((m = re.exec(text)) !== null) ranges.push([m.index, m.index + m[0].length, "term"]);
    }
    return ranges;
  }

  function renderHighlighted(container, text, hl) {
    container.textContent = "";
    const ranges = highlightRanges(text, hl);
    const cuts = new Set([0, text.length]);
    ranges.forEach(([a, b]) => { cuts.add(a); cuts.add(b); });
    const points = [...cuts].sort((a, b) => a - b);
    for (let i = 0; i < points.length - 1; i++) {
      const a = points[i], b = points[i + 1];
      const piece = text.slice(a, b);
      const inSent = ranges.some(([x, y, k]) => k === "sent" && x <= a && b <= y);
      const inTerm = ranges.some(([x, y, k]) => k === "term" && x <= a && b <= y);
      if (!inSent && !inTerm) { container.append(piece); continue; }
      const cls = [inSent ? "sent" : "", inTerm ? "term" : ""].filter(Boolean).join(" ");
      container.append(el("mark", { class: cls, text: piece }));
    }
  }

  function renderPrediction(req, p) {
    const ex = p.explanation;
    const outId = taxonomy ? taxonomy.out_of_theme.id : null;
    const isOut = p.laari === outId || !(p.laari in p.laari_scores);
    $("result").hidden = false;
    $("result-laari").textContent = isOut ? t("result.out") : laariName(p.laari) + " · " + pct(p.laari_scores[p.laari]);
    $("result-laari-id").textContent = p.laari;
    const badge = $("result-fit-verdict");
    badge.textContent = t("verdict." + p.fit_verdict);
    badge.className = "badge " + p.fit_verdict;
    const fitPct = ex.fit && ex.fit.percentile != null ? t("result.percentile", { p: Math.round(ex.fit.percentile) }) : "";
    $("result-fit").textContent = t("result.fit", { fit: pct(p.fit), pct: fitPct });
    $("result-runner-up").textContent = isOut
      ? t("result.nearest", { laari: laariName(ex.nearest_laari) })
      : t("result.runner_up", { laari: laariName(ex.runner_up.laari), p: pct(ex.runner_up.probability),
                                m: (100 * ex.margin).toFixed(0) });
    const warn = $("result-warnings");
    warn.textContent = "";
    for (const w of p.warnings) warn.append(el("li", { text: w }));

    const bars = $("result-bars");
    bars.textContent = "";
    const ranked = Object.entries(p.laari_scores).sort((a, b) => b[1] - a[1]);
    ranked.forEach(([id, prob], i) => {
      const fill = el("span", { class: "fill" });
      fill.style.width = (100 * prob).toFixed(1) + "%";
      fill.style.background = colorOf(id);
      const row = el("div", { class: "bar" + (i === 0 ? " top" : "") + (i === 1 ? " second" : ""), "data-laari": id },
        el("span", { class: "label", text: laariName(id) }),
        el("span", { class: "track" }, fill),
        el("span", { class: "value", text: pct(prob) }));
      bars.append(row);
    });
    $("result-out").textContent = t("result.out_prob", { p: pct(p.out_of_theme_probability) });

    const tags = $("result-tags");
    tags.textContent = "";
    const tagRank = Object.entries(p.tag_scores).sort((a, b) => b[1] - a[1]);
    for (const [id, s] of tagRank) {
      const on = p.tags.includes(id);
      tags.append(el("span", { class: "chip" + (on ? " on" : ""), title: id, text: tagName(id) + " " + pct(s) }));
    }
    if (!p.tags.length) tags.append(el("span", { class: "muted small", text: " " + t("result.no_tags") }));

    const terms = $("result-terms");
    terms.textContent = "";
    for (const term of ex.terms || []) {
      terms.append(el("span", { class: "chip " + (term.weight > 0 ? "pos" : "neg"),
                                text: term.term + " " + (term.weight > 0 ? "+" : "") + term.weight.toFixed(2) }));
    }
    const doc = (req.title ? req.title + "\n\n" : "") + req.description;
    renderHighlighted($("result-text"), doc, p.highlights);

    const sim = $("result-similar");
    sim.textContent = "";
    for (const s of ex.similar || []) {
      sim.append(el("li", {}, el("span", { class: "mono small", text: s.id + " " }),
        el("span", { text: s.title }),
        el("span", { class: "chip small", text: laariName(s.laari) }),
        el("span", { class: "muted small", text: " " + s.similarity.toFixed(2) })));
    }
    // correction form
    const sel = $("correct-laari");
    sel.textContent = "";
    if (taxonomy) {
      for (const l of [...taxonomy.laarit, taxonomy.out_of_theme]) {
        const opt = el("option", { value: l.id, text: lang === "fi" ? l.name_fi : l.name_en });
        if (l.id === p.laari) opt.selected = true;
        sel.append(opt);
      }
      const box = $("correct-tags");
      box.textContent = "";
      for (const tg of taxonomy.tags) {
        const cb = el("input", { type: "checkbox", value: tg.id, id: "tag-" + tg.id });
        cb.checked = p.tags.includes(tg.id);
        box.append(el("label", { class: "check", for: "tag-" + tg.id }, cb, " " + (lang === "fi" ? tg.name_fi : tg.name_en)));
      }
    }
    $("correct-form").hidden = true;
    $("feedback-status").textContent = "";
    $("feedback-status").className = "";
  }

  async function predict(ev) {
    ev.preventDefault();
    showError("input-error", "");
    const description = $("description").value;
    if (!description.trim()) { showError("input-error", t("input.empty")); return; }
    const req = { description };
    const title = $("title").value.trim();
    const id = $("project-id").value.trim();
    if (title) req.title = title;
    if (id) req.id = id;
    const btn = $("predict-btn");
    btn.disabled = true;
    btn.textContent = t("input.working");
    try {
      const p = await api("/v1/predict", { method: "POST", headers: { "Content-Type": "application/json" },
                                           body: JSON.stringify(req) });
      last = { request: req, prediction: p };
      renderPrediction(req, p);
    } catch (e) {
      showError("input-error", e.message);
    } finally {
      btn.disabled = false;
      btn.textContent = t("input.submit");
    }
  }

  async function sendFeedback(decision) {
    if (!last) return;
    const { request: req, prediction: p } = last;
    const status = $("feedback-status");
    const body = {
      project_id: req.id || null, title: req.title || null, text: req.description,
      text_sha256: p.text_sha256, model_version: p.model_version, decision,
      suggested_laari: p.laari, suggested_tags: p.tags,
    };
    const reviewer = $("reviewer").value.trim();
    const comment = $("comment").value.trim();
    if (reviewer) body.reviewer = reviewer;
    if (comment) body.comment = comment;
    if (decision === "correct") {
      body.laari = $("correct-laari").value;
      body.tags = [...document.querySelectorAll("#correct-tags input:checked")].map((c) => c.value);
    }
    status.className = "";
    status.textContent = t("feedback.saving");
    try {
      const row = await api("/v1/feedback", { method: "POST", headers: { "Content-Type": "application/json" },
                                              body: JSON.stringify(body) });
      status.className = "ok";
      status.textContent = t("feedback.saved", { id: row.id });
      status.dataset.feedbackId = row.id;
    } catch (e) {
      status.className = "error";
      status.textContent = e.message;
    }
  }

  async function readFile() {
    const input = $("file");
    const file = input.files && input.files[0];
    if (!file) return;
    showError("input-error", "");
    try {
      const form = new FormData();
      form.append("file", file, file.name);
      const out = await api("/v1/extract", { method: "POST", body: form });
      $("description").value = out.text;
      if (!$("title").value) $("title").value = file.name.replace(/\.[^.]+$/, "");
      updateCount();
      const note = t("input.loaded", { name: out.filename, n: out.characters });
      $("char-count").textContent = note + (out.warnings.length ? " · " + out.warnings.join("; ") : "");
    } catch (e) {
      showError("input-error", e.message);
    } finally {
      input.value = "";
    }
  }

  function updateCount() {
    $("char-count").textContent = t("input.chars", { n: $("description").value.length });
  }

  function initReview() {
    const keyInput = $("api-key");
    keyInput.value = sessionStorage.getItem("laari.key") || "";
    keyInput.addEventListener("change", () => {
      const v = keyInput.value.trim();
      if (v) sessionStorage.setItem("laari.key", v); else sessionStorage.removeItem("laari.key");
    });
    $("predict-form").addEventListener("submit", predict);
    $("description").addEventListener("input", updateCount);
    $("file").addEventListener("change", readFile);
    $("accept-btn").addEventListener("click", () => sendFeedback("accept"));
    $("correct-btn").addEventListener("click", () => { $("correct-form").hidden = !$("correct-form").hidden; });
    $("save-correction-btn").addEventListener("click", () => sendFeedback("correct"));
    updateCount();
  }

  // ------------------------------------------------------------------ pools page
  let poolsData = null, mapData = null;

  function renderPools() {
    const tbody = document.querySelector("#pools-table tbody");
    tbody.textContent = "";
    for (const l of poolsData.laarit) {
      const name = lang === "fi" ? l.name_fi : l.name_en;
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = colorOf(l.id);
      const assess = el("ul", { class: "plain" });
      for (const a of l.assessment) assess.append(el("li", { text: a }));
      const kw = el("div", { class: "chips" });
      for (const k of l.keywords.slice(0, 10)) kw.append(el("span", { class: "chip small", text: k.term }));
      const nearest = l.nearest ? laariName(l.nearest.laari) + " (" + l.nearest.separation.toFixed(3) + ")" : "–";
      tbody.append(el("tr", { "data-laari": l.id },
        el("td", {}, swatch, el("a", { href: "#pool-" + l.id, text: name })),
        el("td", {}, assess),
        el("td", { class: "num", text: String(l.size) }),
        el("td", { class: "num", text: l.cohesion == null ? "–" : l.cohesion.toFixed(3) }),
        el("td", { text: nearest }),
        el("td", {}, kw)));
    }
    const details = $("pool-details");
    details.textContent = "";
    for (const l of poolsData.laarit) {
      const reps = el("ol", { class: "similar" });
      for (const m of l.representatives) reps.append(el("li", {}, el("span", { class: "mono small", text: m.id + " " }), m.title,
        el("span", { class: "muted small", text: " " + m.similarity.toFixed(3) })));
      const outs = el("ol", { class: "similar" });
      for (const m of l.outliers) outs.append(el("li", {}, el("span", { class: "mono small", text: m.id + " " }), m.title,
        el("span", { class: "muted small", text: " " + m.similarity.toFixed(3) +
          (m.closer_to ? " · " + t("pools.closer_to", { laari: laariName(m.closer_to) }) : "") })));
      details.append(el("details", { id: "pool-" + l.id },
        el("summary", { text: (lang === "fi" ? l.name_fi : l.name_en) + " — " + t("pools.misfits", { n: l.closer_to_other }) }),
        el("div", { class: "grid2" },
          el("div", {}, el("h4", { text: t("pools.representatives") }), reps),
          el("div", {}, el("h4", { text: t("pools.outliers") }), outs))));
    }
  }

  function renderMap() {
    const root = $("map");
    [...root.querySelectorAll("g")].forEach((g) => g.remove());
    const W = 640, H = 480, pad = 24;
    const sx = (x) => pad + (x + 1) / 2 * (W - 2 * pad);
    const sy = (y) => H - pad - (y + 1) / 2 * (H - 2 * pad);
    const g = svg("g", { class: "points" });
    for (const pnt of mapData.points) {
      const c = svg("circle", { cx: sx(pnt.x).toFixed(1), cy: sy(pnt.y).toFixed(1), r: 4, fill: colorOf(pnt.laari),
                                "fill-opacity": "0.75", "data-laari": pnt.laari, "data-id": pnt.id });
      const title = svg("title", {});
      title.textContent = pnt.id + " · " + pnt.title + " (" + laariName(pnt.laari) + ")";
      c.append(title);
      c.addEventListener("mouseenter", () => { $("map-info").textContent = title.textContent; });
      g.append(c);
    }
    root.append(g);
    const gc = svg("g", { class: "centroids" });
    for (const c of mapData.centroids) {
      const x = sx(c.x), y = sy(c.y);
      gc.append(svg("rect", { x: (x - 7).toFixed(1), y: (y - 7).toFixed(1), width: 14, height: 14,
                              fill: colorOf(c.laari), stroke: "#111", "stroke-width": 2 }));
      const label = svg("text", { x: (x + 10).toFixed(1), y: (y + 4).toFixed(1), class: "map-label" });
      label.textContent = laariName(c.laari);
      gc.append(label);
    }
    root.append(gc);
    const legend = $("map-legend");
    legend.textContent = "";
    const ids = taxonomy ? [...taxonomy.laarit.map((l) => l.id), taxonomy.out_of_theme.id] : [];
    for (const id of ids) {
      const sw = el("span", { class: "swatch" });
      sw.style.background = colorOf(id);
      const n = mapData.points.filter((p) => p.laari === id).length;
      legend.append(el("li", {}, sw, laariName(id) + " (" + n + ")"));
    }
    $("map-info").textContent = t("pools.explained", { a: pct(mapData.explained_variance[0]), b: pct(mapData.explained_variance[1]) });
  }

  async function initPools() {
    try {
      [poolsData, mapData] = await Promise.all([api("/v1/laarit"), api("/v1/laarit/map")]);
      renderPools();
      renderMap();
    } catch (e) {
      showError("pools-error", e.message);
    }
  }

  // ------------------------------------------------------------------ start
  document.addEventListener("DOMContentLoaded", async () => {
    applyI18n();
    const page = document.body.dataset.page;
    $("lang-toggle").addEventListener("click", () => {
      lang = lang === "fi" ? "en" : "fi";
      localStorage.setItem("laari.lang", lang);
      applyI18n();
      if (page === "review") { updateCount(); if (last) renderPrediction(last.request, last.prediction); }
      if (page === "pools" && poolsData) { renderPools(); renderMap(); }
    });
    if (page === "review") initReview();
    await loadCommon();
    if (page === "pools") await initPools();
    document.body.dataset.ready = "1";
  });
})();
