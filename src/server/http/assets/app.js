// ferry's page: browse (a window of rows at a time, so a folder of
// 10,000 entries stays quick), search below, preview (images, text,
// Markdown, audio, video, PDF), select many, upload (tus, resumable),
// download (files, zip and tar of folders and selections), delete, mkdir,
// rename, share, and the chat. No framework, no build step. Every name
// from the server is inserted with textContent, never as HTML; the one
// HTML inserted is the server's Markdown rendering, which turns raw HTML
// into text.
"use strict";

(function () {
  const body = document.body;
  const here = body.dataset.path || "/";
  let perms = {};
  try { perms = JSON.parse(body.dataset.perms || "{}"); } catch (e) { perms = {}; }
  const authed = body.dataset.authed === "true";
  const userName = body.dataset.user || "";
  const authAvailable = body.dataset.auth === "true";
  const canLink = body.dataset.links === "true";
  const CHUNK = 8 * 1024 * 1024;

  // Every request carries X-Ferry: the server refuses state changes
  // without it or with another site's Origin.
  function call(method, url, opts) {
    opts = opts || {};
    const headers = Object.assign({ "X-Ferry": "1" }, opts.headers || {});
    return fetch(url, { method: method, headers: headers, body: opts.body, credentials: "same-origin" });
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const k of Object.keys(attrs)) {
        if (k === "class") e.className = attrs[k];
        else e.setAttribute(k, attrs[k]);
      }
    }
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function button(label, onClick, attrs) {
    const b = el("button", Object.assign({ type: "button" }, attrs || {}), label);
    b.addEventListener("click", onClick);
    return b;
  }

  function encodeSegment(s) {
    return encodeURIComponent(s);
  }

  function childUrl(name, dir) {
    return here + encodeSegment(name) + (dir ? "/" : "");
  }

  // The served path (no leading slash) of the folder shown, decoded.
  function herePath() {
    return here.split("/").filter(Boolean).map(decodeURIComponent).join("/");
  }

  function b64(s) {
    const bytes = new TextEncoder().encode(s);
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin);
  }

  function human(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let u = 0;
    while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
    return u === 0 ? n + " B" : n.toFixed(1) + " " + units[u];
  }

  function when(secs) {
    if (secs === undefined || secs === null) return "";
    const d = new Date(secs * 1000);
    const p = (x) => String(x).padStart(2, "0");
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) + ":" + p(d.getMinutes());
  }

  function say(text, bad) {
    const s = document.getElementById("status");
    s.textContent = text;
    s.className = bad ? "bad" : "";
  }

  async function failure(res) {
    let t = "";
    try { t = (await res.text()).trim(); } catch (e) { t = ""; }
    return res.status + " " + (t || res.statusText);
  }

  // ---- account -----------------------------------------------------------

  function account() {
    const box = document.getElementById("account");
    if (!authAvailable) return;
    if (authed) {
      if (userName && userName !== "-") box.appendChild(el("span", { id: "whoami" }, userName));
      box.appendChild(button("Log out", async () => {
        await call("POST", "/.ferry/logout");
        // Back to the top: this folder may be closed to anonymous visitors.
        location.href = "/";
      }, { id: "logout" }));
      return;
    }
    const form = el("form", { id: "login" });
    // A user name and its password, or the server's token alone (no name).
    const userLabel = el("label", { for: "user" }, "User");
    const user = el("input", { id: "user", type: "text", autocomplete: "username", placeholder: "(token: leave empty)" });
    const label = el("label", { for: "token" }, "Password");
    const input = el("input", { id: "token", type: "password", autocomplete: "current-password" });
    const go = el("button", { type: "submit" }, "Log in");
    form.append(userLabel, user, label, input, go);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = user.value
        ? "user=" + encodeURIComponent(user.value) + "&password=" + encodeURIComponent(input.value)
        : "token=" + encodeURIComponent(input.value);
      const res = await call("POST", "/.ferry/login", { body });
      if (res.ok) location.reload();
      else say("login refused: " + (await failure(res)), true);
    });
    box.appendChild(form);
  }

  // ---- kinds of file ----------------------------------------------------

  const EXT = {
    image: "png jpg jpeg gif webp svg bmp avif ico",
    video: "mp4 webm ogv mov m4v mkv",
    audio: "mp3 ogg oga opus wav flac m4a aac",
    pdf: "pdf",
    markdown: "md markdown",
    text: "txt log csv tsv json yaml yml toml ini conf cfg xml html htm css js mjs ts tsx jsx rs py go c h cpp hpp cc java kt rb php sh bash zsh fish ps1 bat sql diff patch env lua pl r swift scala vue svelte tex srt vtt nfo lock gitignore dockerfile makefile",
    archive: "zip tar gz tgz bz2 xz zst 7z rar iso dmg deb rpm",
  };
  const TYPE_OF = {};
  for (const t of Object.keys(EXT)) for (const x of EXT[t].split(" ")) TYPE_OF[x] = t;
  const THUMBS = new Set(["png", "jpg", "jpeg", "gif", "webp"]);

  function extOf(name) {
    const i = name.lastIndexOf(".");
    return i > 0 ? name.slice(i + 1).toLowerCase() : name.toLowerCase();
  }

  function typeOf(e) {
    if (e.kind === "dir") return "dir";
    return TYPE_OF[extOf(e.name)] || "file";
  }

  // A file-type icon: a coloured badge with the kind's short name.
  function icon(e) {
    const t = typeOf(e);
    const label = t === "dir" ? "" : (TYPE_OF[extOf(e.name)] ? extOf(e.name).slice(0, 4).toUpperCase() : "");
    return el("span", { class: "icon", "data-type": t, "aria-hidden": "true" }, label);
  }

  // ---- listing -----------------------------------------------------------

  const PAGE = 200;
  let entries = [];
  let sortKey = "name";
  let sortDir = 1;
  let filter = "";
  let shown = [];
  let limit = PAGE;
  const selected = new Set();
  const showsHidden = body.dataset.hidden === "true";
  let hideDots = showsHidden && localStorage.getItem("ferry-hide-dots") === "1";
  const archive = /Windows/.test(navigator.userAgent) ? "zip" : "tar";

  function fromPage() {
    const data = document.getElementById("entries");
    if (!data) return null;
    try {
      return JSON.parse(data.textContent).map(([name, kind, size, mtime]) => ({ name, kind, size, mtime_unix: mtime }));
    } catch (e) { return null; }
  }

  async function refresh() {
    const res = await call("GET", here + "?json");
    if (!res.ok) { say("cannot list: " + (await failure(res)), true); return; }
    const j = await res.json();
    entries = j.entries;
    for (const n of Array.from(selected)) if (!entries.some((e) => e.name === n)) selected.delete(n);
    render();
  }

  function sorted() {
    const f = filter.toLowerCase();
    const list = entries.filter((e) => (!f || e.name.toLowerCase().includes(f)) && !(hideDots && e.name.startsWith(".")));
    const coll = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
    list.sort((a, b) => {
      const da = a.kind === "dir" ? 0 : 1, db = b.kind === "dir" ? 0 : 1;
      if (da !== db) return da - db;
      let r;
      if (sortKey === "size") r = a.size - b.size;
      else if (sortKey === "mtime") r = (a.mtime_unix || 0) - (b.mtime_unix || 0);
      else r = coll.compare(a.name, b.name);
      return (r || coll.compare(a.name, b.name)) * sortDir;
    });
    return list;
  }

  function header() {
    const thead = document.querySelector("#list thead");
    thead.textContent = "";
    const tr = el("tr");
    const all = el("input", { type: "checkbox", id: "pick-all", "aria-label": "Select every entry shown" });
    all.checked = shown.length > 0 && shown.every((e) => selected.has(e.name));
    all.addEventListener("change", () => {
      for (const e of shown) { if (all.checked) selected.add(e.name); else selected.delete(e.name); }
      for (const box of document.querySelectorAll("#list tbody input.pick")) box.checked = all.checked;
      selection();
    });
    const pickTh = el("th", { scope: "col", class: "pick" });
    pickTh.appendChild(all);
    tr.appendChild(pickTh);
    const cols = [["name", "Name"], ["size", "Size"], ["mtime", "Modified"]];
    for (const [key, label] of cols) {
      const th = el("th", { scope: "col", class: key });
      const arrow = sortKey === key ? (sortDir > 0 ? " ▲" : " ▼") : "";
      th.setAttribute("aria-sort", sortKey === key ? (sortDir > 0 ? "ascending" : "descending") : "none");
      th.appendChild(button(label + arrow, () => {
        if (sortKey === key) sortDir = -sortDir; else { sortKey = key; sortDir = 1; }
        render();
      }, { class: "sort", "data-sort": key }));
      tr.appendChild(th);
    }
    tr.appendChild(el("th", { scope: "col", class: "actions" }, "Actions"));
    thead.appendChild(tr);
  }

  function archiveUrl(dirUrl, kind) {
    return dirUrl + "?" + (kind || archive);
  }

  function row(e) {
    const dir = e.kind === "dir";
    const tr = el("tr", { "data-name": e.name, "data-kind": e.kind });
    const pick = el("td", { class: "pick" });
    const box = el("input", { type: "checkbox", class: "pick", "aria-label": "Select " + e.name });
    box.checked = selected.has(e.name);
    box.addEventListener("change", () => {
      if (box.checked) selected.add(e.name); else selected.delete(e.name);
      selection();
    });
    pick.appendChild(box);
    tr.appendChild(pick);
    const cell = el("td", { class: "name" });
    const name = el("div", { class: "entry" });
    cell.appendChild(name);
    const url = childUrl(e.name, dir);
    if (!dir && THUMBS.has(extOf(e.name)) && perms.read) {
      const img = el("img", { class: "thumb", src: url + "?thumb", alt: "", loading: "lazy", width: "40", height: "40" });
      // No thumbnail (a damaged or huge image): the type's icon.
      img.addEventListener("error", () => img.replaceWith(icon(e)));
      name.appendChild(img);
    } else {
      name.appendChild(icon(e));
    }
    const a = el("a", { href: url }, e.name + (dir ? "/" : ""));
    if (!dir) a.addEventListener("click", (ev) => {
      if (ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.altKey || !previewable(e)) return;
      ev.preventDefault();
      openViewer(e);
    });
    name.appendChild(a);
    tr.appendChild(cell);
    tr.appendChild(el("td", { class: "size" }, dir ? "" : human(e.size)));
    tr.appendChild(el("td", { class: "mtime" }, when(e.mtime_unix)));
    const act = el("td", { class: "actions" });
    const menu = el("span", { class: "menu", id: "menu-" + Math.random().toString(36).slice(2) });
    const more = button("⋯", () => {
      const open = tr.classList.toggle("open");
      more.setAttribute("aria-expanded", String(open));
      if (open) { const first = menu.querySelector("a, button"); if (first) first.focus(); }
    }, { class: "more", "aria-expanded": "false", "aria-controls": menu.id, "aria-label": "Actions for " + e.name });
    if (dir) {
      menu.appendChild(el("a", { href: archiveUrl(url), class: "download", "aria-label": "Download " + e.name + " as " + archive }, "Download"));
    } else {
      menu.appendChild(el("a", { href: url + "?download", class: "download", download: e.name, "aria-label": "Download " + e.name }, "Download"));
    }
    menu.appendChild(button("Copy link", () => copyText(location.origin + url, "link to " + e.name), { class: "copy-link", "aria-label": "Copy a link to " + e.name }));
    if (canLink && perms.read) {
      menu.appendChild(button("Share", () => share(e), { class: "share", "aria-label": "Copy a share link to " + e.name }));
    }
    if (perms.upload && perms.delete) {
      menu.appendChild(button("Rename", () => rename(e), { class: "rename", "aria-label": "Rename " + e.name }));
    }
    if (perms.delete) {
      menu.appendChild(button("Delete", () => remove(e), { class: "delete", "aria-label": "Delete " + e.name }));
    }
    act.append(more, menu);
    tr.appendChild(act);
    return tr;
  }

  // The table holds a window of the entries: the first PAGE rows, and
  // more as the last one scrolls into view.
  let more = null;
  function render() {
    shown = sorted();
    limit = PAGE;
    header();
    const tbody = document.querySelector("#list tbody");
    tbody.textContent = "";
    append(tbody, 0);
    selection();
    const count = document.getElementById("count");
    if (count) count.textContent = shown.length === entries.length ? entries.length + " entries" : shown.length + " of " + entries.length + " entries";
  }

  function append(tbody, from) {
    const frag = document.createDocumentFragment();
    for (const e of shown.slice(from, limit)) frag.appendChild(row(e));
    tbody.appendChild(frag);
    if (more) { more.disconnect(); more = null; }
    if (limit < shown.length && "IntersectionObserver" in window) {
      const last = tbody.lastElementChild;
      more = new IntersectionObserver((seen) => {
        if (!seen.some((s) => s.isIntersecting)) return;
        const at = limit;
        limit += PAGE * 2;
        append(tbody, at);
      }, { rootMargin: "600px" });
      more.observe(last);
    } else if (limit < shown.length) {
      limit = shown.length;
      append(tbody, from + PAGE);
    }
  }

  // ---- selection ---------------------------------------------------------

  function selection() {
    const bar = document.getElementById("selection");
    if (!bar) return;
    bar.textContent = "";
    const all = document.getElementById("pick-all");
    if (all) all.checked = shown.length > 0 && shown.every((e) => selected.has(e.name));
    if (!selected.size) { bar.hidden = true; return; }
    bar.hidden = false;
    const picked = entries.filter((e) => selected.has(e.name));
    const files = picked.filter((e) => e.kind !== "dir");
    const dirs = picked.length - files.length;
    const bytes = files.reduce((n, e) => n + e.size, 0);
    let text = picked.length + " selected · " + human(bytes);
    if (dirs) text += " in " + files.length + " file" + (files.length === 1 ? "" : "s") + " and " + dirs + " folder" + (dirs === 1 ? "" : "s");
    bar.appendChild(el("span", { id: "selection-sum" }, text));
    const q = picked.map((e) => "&pick=" + encodeURIComponent(e.name)).join("");
    const zip = el("a", { href: here + "?zip" + q, id: "download-selection", class: "button" }, "Download as zip");
    if (zip.href.length > 15000) {
      zip.removeAttribute("href");
      zip.setAttribute("aria-disabled", "true");
      zip.title = "Too many for one request: select fewer, or download the folder";
    }
    bar.appendChild(zip);
    if (perms.delete) bar.appendChild(button("Delete", removeSelected, { id: "delete-selection" }));
    bar.appendChild(button("Clear", () => { selected.clear(); render(); }, { id: "clear-selection" }));
  }

  async function removeSelected() {
    const names = Array.from(selected);
    if (!confirm("Delete " + names.length + " entries, with everything in the folders among them?")) return;
    let bad = 0;
    for (const n of names) {
      const e = entries.find((x) => x.name === n);
      const res = await call("DELETE", childUrl(n, e && e.kind === "dir"));
      if (res.ok) selected.delete(n); else bad++;
    }
    say(bad ? bad + " could not be deleted" : "deleted " + names.length, bad > 0);
    refresh();
  }

  // ---- copying -----------------------------------------------------------

  // The clipboard API needs a secure context (https or localhost); on a
  // LAN address over http, the older way, and the text shown to copy.
  async function copyText(text, what) {
    const s = document.getElementById("status");
    s.className = "";
    s.textContent = what + ": ";
    const box = el("input", { id: "copied", readonly: "", value: text, "aria-label": what });
    s.appendChild(box);
    box.select();
    let done = false;
    try {
      if (navigator.clipboard && window.isSecureContext) { await navigator.clipboard.writeText(text); done = true; }
    } catch (err) { done = false; }
    if (!done) { try { done = document.execCommand("copy"); } catch (err) { done = false; } }
    s.append(done ? " (copied)" : " (select and copy it)");
    return box;
  }

  async function remove(e) {
    if (!confirm("Delete " + e.name + (e.kind === "dir" ? " and everything in it" : "") + "?")) return;
    const res = await call("DELETE", childUrl(e.name, e.kind === "dir"));
    if (res.ok) { selected.delete(e.name); say("deleted " + e.name); refresh(); }
    else say("cannot delete " + e.name + ": " + (await failure(res)), true);
  }

  // A read link to the entry (a week), shown and copied.
  async function share(e) {
    const path = "/" + (herePath() ? herePath() + "/" : "") + e.name;
    const res = await call("POST", "/.ferry/share", {
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "path=" + encodeURIComponent(path),
    });
    if (!res.ok) { say("cannot share " + e.name + ": " + (await failure(res)), true); return; }
    const made = await res.json();
    const box = await copyText(location.origin + made.url, "share link to " + e.name);
    box.id = "share-url";
  }

  async function rename(e) {
    const to = prompt("New name for " + e.name, e.name);
    if (!to || to === e.name) return;
    if (to.includes("/")) { say("a name cannot contain /", true); return; }
    const res = await call("MOVE", childUrl(e.name, false), {
      headers: { "Destination": here + encodeSegment(to), "Overwrite": "F" },
    });
    if (res.ok) { selected.delete(e.name); say("renamed " + e.name + " to " + to); refresh(); }
    else say("cannot rename " + e.name + ": " + (await failure(res)), true);
  }

  async function mkdir() {
    const name = prompt("New folder name");
    if (!name) return;
    if (name.includes("/")) { say("a name cannot contain /", true); return; }
    const res = await call("MKCOL", here + encodeSegment(name) + "/");
    if (res.ok) { say("made " + name); refresh(); }
    else say("cannot make " + name + ": " + (await failure(res)), true);
  }

  // ---- preview -----------------------------------------------------------

  const TEXT_MAX = 256 * 1024;

  function previewable(e) {
    return e.kind !== "dir" && ["image", "video", "audio", "pdf", "markdown", "text"].includes(typeOf(e));
  }

  let viewing = null;

  function viewer() {
    let d = document.getElementById("viewer");
    if (d) return d;
    d = el("dialog", { id: "viewer", "aria-labelledby": "viewer-title" });
    const head = el("div", { class: "viewer-head" });
    head.append(el("h2", { id: "viewer-title" }), el("span", { id: "viewer-count" }));
    const nav = el("div", { class: "viewer-nav" });
    nav.append(
      button("← Previous", () => step(-1), { id: "viewer-prev", "aria-keyshortcuts": "ArrowLeft" }),
      button("Next →", () => step(1), { id: "viewer-next", "aria-keyshortcuts": "ArrowRight" }),
      el("a", { id: "viewer-download", class: "button" }, "Download"),
      button("Close", () => d.close(), { id: "viewer-close" }));
    head.appendChild(nav);
    d.append(head, el("div", { id: "viewer-body" }));
    d.addEventListener("keydown", (ev) => {
      const t = ev.target && ev.target.tagName;
      if (t === "VIDEO" || t === "AUDIO" || t === "INPUT") return;
      if (ev.key === "ArrowRight") { ev.preventDefault(); step(1); }
      if (ev.key === "ArrowLeft") { ev.preventDefault(); step(-1); }
    });
    d.addEventListener("close", () => {
      document.getElementById("viewer-body").textContent = "";
      if (viewing) {
        const back = document.querySelector('#list tr[data-name="' + CSS.escape(viewing.name) + '"] td.name a');
        if (back) back.focus();
      }
      viewing = null;
    });
    document.body.appendChild(d);
    return d;
  }

  function step(by) {
    const files = shown.filter(previewable);
    if (!viewing || !files.length) return;
    let i = files.findIndex((e) => e.name === viewing.name);
    i = (i + by + files.length) % files.length;
    openViewer(files[i]);
  }

  async function openViewer(e) {
    const d = viewer();
    viewing = e;
    const files = shown.filter(previewable);
    const url = childUrl(e.name, false);
    document.getElementById("viewer-title").textContent = e.name;
    document.getElementById("viewer-count").textContent = (files.findIndex((x) => x.name === e.name) + 1) + " of " + files.length;
    const dl = document.getElementById("viewer-download");
    dl.href = url + "?download";
    dl.setAttribute("download", e.name);
    const box = document.getElementById("viewer-body");
    box.textContent = "";
    box.dataset.type = typeOf(e);
    if (!d.open) d.showModal();
    const t = typeOf(e);
    if (t === "image") {
      box.appendChild(el("img", { src: url, alt: e.name, id: "viewer-image" }));
    } else if (t === "video") {
      box.appendChild(el("video", { src: url, controls: "", preload: "metadata", id: "viewer-video" }));
    } else if (t === "audio") {
      box.appendChild(el("audio", { src: url, controls: "", preload: "metadata", id: "viewer-audio" }));
    } else if (t === "pdf") {
      box.appendChild(el("iframe", { src: url, title: e.name, id: "viewer-pdf" }));
    } else if (t === "markdown") {
      const res = await call("GET", url + "?render");
      if (viewing !== e) return;
      if (!res.ok) { box.textContent = "cannot show " + e.name + ": " + (await failure(res)); return; }
      // The server's rendering: raw HTML in the file came back as text.
      const md = el("article", { class: "markdown", id: "viewer-markdown" });
      md.innerHTML = await res.text();
      box.appendChild(md);
    } else if (t === "text") {
      const res = await call("GET", url, { headers: { Range: "bytes=0-" + (TEXT_MAX - 1) } });
      if (viewing !== e) return;
      if (!res.ok) { box.textContent = "cannot show " + e.name + ": " + (await failure(res)); return; }
      box.appendChild(el("pre", { id: "viewer-text" }, await res.text()));
      if (e.size > TEXT_MAX) box.appendChild(el("p", { class: "note" }, "The first " + human(TEXT_MAX) + " of " + human(e.size) + "."));
    }
    document.getElementById("viewer-close").focus();
  }

  // ---- search below ------------------------------------------------------

  let searching = null;

  function searchDone() {
    if (searching) searching.abort();
    searching = null;
    document.getElementById("results").hidden = true;
    document.getElementById("list").hidden = false;
  }

  async function search(q) {
    if (searching) searching.abort();
    const ctl = new AbortController();
    searching = ctl;
    const box = document.getElementById("results");
    box.textContent = "";
    box.hidden = false;
    document.getElementById("list").hidden = true;
    const head = el("div", { class: "results-head" });
    const state = el("span", { id: "results-state", role: "status" }, "searching…");
    head.append(el("h2", {}, "Names with “" + q + "” below " + decodeURIComponent(here)), state,
      button("Back to the folder", searchDone, { id: "results-back" }));
    const list = el("ul", { id: "results-list" });
    box.append(head, list);
    let found = 0;
    try {
      const res = await fetch(here + "?search=" + encodeURIComponent(q) + "&limit=2000", { signal: ctl.signal, credentials: "same-origin" });
      if (!res.ok) { state.textContent = "cannot search: " + (await failure(res)); return; }
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const hit = JSON.parse(line);
          if (hit.done) {
            const why = { results: " (the first ones: narrow the search)", entries: " (stopped: too many entries to look through)", time: " (stopped: it took too long)" }[hit.cut] || "";
            state.textContent = found + " found" + why;
            continue;
          }
          found++;
          const dir = hit.kind === "dir";
          const href = here + hit.path.split("/").map(encodeSegment).join("/") + (dir ? "/" : "");
          const li = el("li", { "data-path": hit.path });
          const name = hit.path.split("/").pop();
          li.append(icon({ name, kind: hit.kind }), el("a", { href }, hit.path + (dir ? "/" : "")),
            el("span", { class: "size" }, dir ? "" : human(hit.size)));
          list.appendChild(li);
          state.textContent = found + " found, searching…";
        }
      }
    } catch (err) {
      if (err.name !== "AbortError") state.textContent = "search failed: " + err.message;
    }
  }

  // ---- uploads (tus 1.0) -------------------------------------------------

  class Upload {
    constructor(file, rel) {
      this.file = file;
      this.path = (herePath() ? herePath() + "/" : "") + rel;
      this.url = null;
      this.offset = 0;
      this.xhr = null;
      this.cancelled = false;
      this.overwrite = false;
      this.row = el("div", { class: "upload", "data-path": this.path });
      this.label = el("span", { class: "what" }, rel);
      this.bar = el("progress", { max: String(Math.max(file.size, 1)), value: "0" });
      this.info = el("span", { class: "info" }, "waiting");
      this.retryBtn = button("Retry", () => this.start(), { class: "retry", hidden: "" });
      this.cancelBtn = button("Cancel", () => this.cancel(), { class: "cancel" });
      this.row.append(this.label, this.bar, this.info, this.retryBtn, this.cancelBtn);
      document.getElementById("uploads").appendChild(this.row);
    }

    show(text, state) {
      this.info.textContent = text;
      this.row.dataset.state = state || "";
    }

    async create() {
      const meta = "path " + b64(this.path) + (this.overwrite ? ",overwrite " + b64("1") : "");
      const res = await call("POST", "/.ferry/tus/", {
        headers: { "Tus-Resumable": "1.0.0", "Upload-Length": String(this.file.size), "Upload-Metadata": meta },
      });
      if (res.status === 409 && perms.delete && !this.overwrite) {
        if (confirm(this.path + " exists. Replace it?")) { this.overwrite = true; return this.create(); }
      }
      if (!res.ok) throw new Error(await failure(res));
      this.url = res.headers.get("Location");
      this.offset = Number(res.headers.get("Upload-Offset") || 0);
    }

    async where() {
      const res = await call("HEAD", this.url, { headers: { "Tus-Resumable": "1.0.0" } });
      if (!res.ok) { this.url = null; return; }
      this.offset = Number(res.headers.get("Upload-Offset") || 0);
    }

    patch(from, to) {
      return new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        this.xhr = xhr;
        xhr.open("PATCH", this.url);
        xhr.setRequestHeader("X-Ferry", "1");
        xhr.setRequestHeader("Tus-Resumable", "1.0.0");
        xhr.setRequestHeader("Upload-Offset", String(from));
        xhr.setRequestHeader("Content-Type", "application/offset+octet-stream");
        const started = performance.now();
        xhr.upload.onprogress = (ev) => {
          const done = from + ev.loaded;
          this.bar.value = done;
          const secs = (performance.now() - started) / 1000;
          const speed = secs > 0 ? human(Math.round(ev.loaded / secs)) + "/s" : "";
          this.show(human(done) + " of " + human(this.file.size) + " · " + speed, "running");
        };
        xhr.onload = () => {
          if (xhr.status === 204) resolve(Number(xhr.getResponseHeader("Upload-Offset")));
          else reject(new Error(xhr.status + " " + xhr.responseText.trim()));
        };
        xhr.onerror = () => reject(new Error("connection lost"));
        xhr.onabort = () => reject(new Error("cancelled"));
        xhr.send(this.file.slice(from, to));
      });
    }

    async start() {
      this.retryBtn.hidden = true;
      this.cancelBtn.hidden = false;
      this.cancelled = false;
      try {
        if (this.url) await this.where();
        if (!this.url) await this.create();
        while (this.offset < this.file.size) {
          if (this.cancelled) throw new Error("cancelled");
          this.offset = await this.patch(this.offset, Math.min(this.offset + CHUNK, this.file.size));
        }
        this.bar.value = this.file.size;
        this.show("done · " + human(this.file.size), "done");
        this.cancelBtn.hidden = true;
        refresh();
      } catch (err) {
        if (this.cancelled) return;
        // A connection that dropped (not an answer) is tried again after
        // a pause, resuming where the server has it, as tus clients do.
        if (err instanceof TypeError && (this.tries = (this.tries || 0) + 1) <= 3) {
          this.show("connection lost; trying again", "retrying");
          await new Promise((r) => setTimeout(r, 500 * this.tries));
          return this.start();
        }
        this.show("failed: " + err.message, "failed");
        this.retryBtn.hidden = false;
      }
    }

    async cancel() {
      this.cancelled = true;
      if (this.xhr) this.xhr.abort();
      if (this.url) await call("DELETE", this.url, { headers: { "Tus-Resumable": "1.0.0" } });
      this.url = null;
      this.show("cancelled", "cancelled");
      this.cancelBtn.hidden = true;
      this.retryBtn.hidden = false;
    }
  }

  async function uploadAll(items) {
    // One at a time keeps the order and the progress readable.
    for (const [file, rel] of items) {
      await new Upload(file, rel).start();
    }
  }

  function readEntries(reader) {
    return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
  }

  async function walk(entry, prefix, out) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      out.push([file, prefix + entry.name]);
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await readEntries(reader);
        if (!batch.length) break;
        for (const e of batch) await walk(e, prefix + entry.name + "/", out);
      }
    }
  }

  function qr() {
    let pop = document.getElementById("qr");
    const t = document.getElementById("qr-toggle");
    if (pop) { pop.remove(); t.setAttribute("aria-expanded", "false"); return; }
    pop = el("div", { id: "qr", role: "dialog", "aria-label": "QR code of this folder's address" });
    const url = location.origin + here;
    pop.append(el("img", { src: "/.ferry/qr?text=" + encodeURIComponent(url), alt: "QR code of " + url, width: "200", height: "200" }),
      el("p", {}, url), button("Close", qr, { id: "qr-close" }));
    t.after(pop);
    t.setAttribute("aria-expanded", "true");
    document.getElementById("qr-close").focus();
  }

  function tools() {
    const box = document.getElementById("tools");
    const filterInput = el("input", { id: "filter", type: "search", placeholder: "Filter this folder", "aria-label": "Filter names in this folder" });
    filterInput.addEventListener("input", () => { filter = filterInput.value; render(); });
    box.appendChild(filterInput);
    if (perms.read) {
      const form = el("form", { id: "search-form", role: "search" });
      const input = el("input", { id: "search", type: "search", placeholder: "Search below", "aria-label": "Search names in this folder and below" });
      form.append(input, el("button", { type: "submit" }, "Search"));
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        if (input.value.trim()) search(input.value.trim()); else searchDone();
      });
      box.appendChild(form);
    }
    // On a phone the actions fold into this menu.
    const fold = el("div", { class: "fold", id: "actions" });
    const menu = button("Menu", () => {
      const open = box.classList.toggle("open");
      menu.setAttribute("aria-expanded", String(open));
      if (open) { const first = fold.querySelector("button, a[href], input:not([tabindex='-1'])"); if (first) first.focus(); }
    }, { id: "menu", "aria-expanded": "false", "aria-controls": "actions" });
    box.appendChild(menu);
    if (perms.upload) {
      const files = el("input", { id: "file-input", type: "file", multiple: "", class: "visually-hidden", tabindex: "-1", "aria-hidden": "true" });
      files.addEventListener("change", () => {
        uploadAll(Array.from(files.files).map((f) => [f, f.name]));
        files.value = "";
      });
      const folder = el("input", { id: "folder-input", type: "file", multiple: "", class: "visually-hidden", tabindex: "-1", "aria-hidden": "true" });
      folder.webkitdirectory = true;
      folder.addEventListener("change", () => {
        uploadAll(Array.from(folder.files).map((f) => [f, f.webkitRelativePath || f.name]));
        folder.value = "";
      });
      fold.append(files, folder,
        button("Upload files", () => files.click(), { id: "upload-files" }),
        button("Upload folder", () => folder.click(), { id: "upload-folder" }),
        button("New folder", mkdir, { id: "mkdir" }));
      const zone = document.getElementById("files");
      zone.addEventListener("dragover", (ev) => { ev.preventDefault(); zone.classList.add("drop"); });
      zone.addEventListener("dragleave", () => zone.classList.remove("drop"));
      zone.addEventListener("drop", async (ev) => {
        ev.preventDefault();
        zone.classList.remove("drop");
        const out = [];
        const items = Array.from(ev.dataTransfer.items || []);
        const found = items.map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
        if (found.length) { for (const e of found) await walk(e, "", out); }
        else for (const f of Array.from(ev.dataTransfer.files)) out.push([f, f.name]);
        uploadAll(out);
      });
    }
    fold.append(
      button("Copy link", () => copyText(location.origin + here, "link to this folder"), { id: "copy-folder-link" }),
      button("QR code", qr, { id: "qr-toggle", "aria-expanded": "false" }));
    if (showsHidden) {
      const label = el("label", { class: "toggle" });
      const cb = el("input", { type: "checkbox", id: "show-hidden" });
      cb.checked = !hideDots;
      cb.addEventListener("change", () => {
        hideDots = !cb.checked;
        localStorage.setItem("ferry-hide-dots", hideDots ? "1" : "0");
        render();
      });
      label.append(cb, " Hidden files");
      fold.appendChild(label);
    }
    if (perms.chat) {
      fold.appendChild(button("Chat", toggleChat, { id: "chat-toggle", "aria-controls": "chat", "aria-expanded": "false" }));
    }
    box.append(fold, el("span", { id: "status", role: "status" }));
    const bar = el("div", { id: "selection", role: "region", "aria-label": "Selection", "aria-live": "polite" });
    bar.hidden = true;
    const results = el("section", { id: "results", "aria-label": "Search results" });
    results.hidden = true;
    box.after(bar);
    document.getElementById("list").before(results);
    document.getElementById("list").after(el("p", { id: "count", class: "muted" }));
    document.addEventListener("keydown", (ev) => {
      if (ev.key !== "Escape") return;
      if (box.classList.contains("open")) { box.classList.remove("open"); menu.setAttribute("aria-expanded", "false"); menu.focus(); }
      const open = document.querySelector("#list tr.open");
      if (open) { open.classList.remove("open"); const m = open.querySelector("button.more"); m.setAttribute("aria-expanded", "false"); m.focus(); }
      if (document.getElementById("qr")) qr();
    });
  }

  // ---- chat --------------------------------------------------------------

  let ws = null;
  let backoff = 500;
  let wanted = false;

  // What could reorder or hide a line's text (control characters, bidi
  // overrides and other invisible format characters) is shown as an
  // escape, as the terminal doors show it; tabs and line ends stay.
  const HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]/g;
  function unhidden(text) {
    return text.replace(HIDDEN, (c) => "\\u{" + c.codePointAt(0).toString(16) + "}");
  }

  function chatLine(text, kind) {
    const log = document.getElementById("chat-log");
    const line = el("li", { class: kind || "" }, unhidden(text));
    log.appendChild(line);
    while (log.children.length > 500) log.removeChild(log.firstChild);
    log.scrollTop = log.scrollHeight;
  }

  function describe(ev) {
    switch (ev.kind) {
      case "welcome": return ["you are " + ev.nick + " in [" + ev.room + "]; /help lists commands", "notice"];
      case "message": {
        const h = ev.history ? "(" + new Date(ev.ts_ms).toLocaleString() + ") " : "";
        return ev.action ? ["[" + ev.room + "] " + h + "* " + ev.nick + " " + ev.text, "message"]
          : ["[" + ev.room + "] " + h + "<" + ev.nick + "> " + ev.text, ev.history ? "history" : "message"];
      }
      case "private": return ["[private " + ev.from + " -> " + ev.to + "] " + ev.text, "private"];
      case "joined": return ["[" + ev.room + "] -> " + ev.nick + " joined", "notice"];
      case "left": return ["[" + ev.room + "] <- " + ev.nick + " left" + (ev.reason ? " (" + ev.reason + ")" : ""), "notice"];
      case "nick": return [ev.old + " is now known as " + ev.new, "notice"];
      case "topic": return [ev.nick ? "[" + ev.room + "] " + ev.nick + " set the topic: " + ev.topic : "[" + ev.room + "] topic: " + (ev.topic || "(none)"), "notice"];
      case "current": return ["you now talk in [" + ev.room + "]", "notice"];
      case "info": return [ev.lines.join("\n"), "notice"];
      case "error": return ["! " + ev.text, "error"];
      case "bye": return ["disconnected: " + ev.reason, "error"];
      default: return [null, null];
    }
  }

  function connect() {
    const nick = document.getElementById("chat-nick").value.trim();
    if (nick) localStorage.setItem("ferry-nick", nick);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = "?nick=" + encodeURIComponent(nick) + "&rooms=" + encodeURIComponent(localStorage.getItem("ferry-rooms") || "lobby");
    ws = new WebSocket(proto + "//" + location.host + "/.ferry/chat" + q);
    const state = document.getElementById("chat-state");
    state.textContent = "connecting";
    ws.onopen = () => { state.textContent = "connected"; backoff = 500; };
    ws.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      const [text, kind] = describe(ev);
      if (text !== null) chatLine(text, kind);
      if (ev.kind === "welcome") document.getElementById("chat-nick").value = ev.nick;
      if (ev.kind === "bye" && /taken|not a nickname/.test(ev.reason)) wanted = false;
    };
    ws.onclose = () => {
      state.textContent = "disconnected";
      ws = null;
      if (wanted) {
        setTimeout(() => { if (wanted && !ws) connect(); }, backoff);
        backoff = Math.min(backoff * 2, 30000);
      }
    };
  }

  function buildChat() {
    const box = document.getElementById("chat");
    const head = el("div", { class: "chat-head" });
    const nickLabel = el("label", { for: "chat-nick" }, "Nickname");
    const nick = el("input", { id: "chat-nick", type: "text", maxlength: "32", autocomplete: "nickname" });
    nick.value = localStorage.getItem("ferry-nick") || "";
    const join = button("Join", () => { wanted = true; if (ws) ws.close(); else connect(); }, { id: "chat-join" });
    head.append(nickLabel, nick, join, el("span", { id: "chat-state", role: "status" }, "not connected"));
    const log = el("ul", { id: "chat-log", "aria-live": "polite" });
    const form = el("form", { id: "chat-form" });
    const input = el("input", { id: "chat-input", type: "text", autocomplete: "off", "aria-label": "Message", placeholder: "Message, or /help" });
    form.append(input, el("button", { type: "submit" }, "Send"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const text = input.value;
      if (!text.trim()) return;
      if (!ws || ws.readyState !== WebSocket.OPEN) { chatLine("! not connected", "error"); return; }
      ws.send(text);
      input.value = "";
    });
    box.append(head, log, form);
  }

  function toggleChat() {
    const box = document.getElementById("chat");
    const t = document.getElementById("chat-toggle");
    box.hidden = !box.hidden;
    t.setAttribute("aria-expanded", String(!box.hidden));
    if (!box.hidden) {
      if (!box.firstChild) buildChat();
      if (!ws) { wanted = true; connect(); }
      document.getElementById("chat-input").focus();
    }
  }

  // Made here rather than in the listing, so that a mirror (wget -r)
  // does not take an archive of every folder.
  function footer() {
    const f = document.querySelector("footer");
    if (!f || !perms.read) return;
    f.append(" · download this folder as ",
      el("a", { href: archiveUrl(here, "zip"), class: "download-folder", "data-format": "zip" }, "zip"), " or ",
      el("a", { href: archiveUrl(here, "tar"), class: "download-folder", "data-format": "tar" }, "tar"));
  }

  account();
  tools();
  footer();
  if (perms.read) {
    const first = fromPage();
    // The server's first rows are painted before the table is rebuilt.
    if (first && document.querySelector("#list tbody tr")) { entries = first; requestAnimationFrame(() => setTimeout(render, 0)); }
    else if (first) { entries = first; render(); } else refresh();
  }
})();
