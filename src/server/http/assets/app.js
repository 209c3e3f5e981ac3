// ferry's page: browse, upload (tus, resumable), download, delete, mkdir,
// rename, and the chat. No framework, no build step. Every name from the
// server is inserted with textContent, never as HTML.
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

  // ---- listing -----------------------------------------------------------

  let entries = [];
  let sortKey = "name";
  let sortDir = 1;
  let filter = "";

  async function refresh() {
    const res = await call("GET", here + "?json");
    if (!res.ok) { say("cannot list: " + (await failure(res)), true); return; }
    const j = await res.json();
    entries = j.entries;
    render();
  }

  function sorted() {
    const f = filter.toLowerCase();
    const list = entries.filter((e) => !f || e.name.toLowerCase().includes(f));
    list.sort((a, b) => {
      const da = a.kind === "dir" ? 0 : 1, db = b.kind === "dir" ? 0 : 1;
      if (da !== db) return da - db;
      let x, y;
      if (sortKey === "size") { x = a.size; y = b.size; }
      else if (sortKey === "mtime") { x = a.mtime_unix || 0; y = b.mtime_unix || 0; }
      else { x = a.name.toLowerCase(); y = b.name.toLowerCase(); }
      return (x < y ? -1 : x > y ? 1 : 0) * sortDir;
    });
    return list;
  }

  function header() {
    const thead = document.querySelector("#list thead");
    thead.textContent = "";
    const tr = el("tr");
    const cols = [["name", "Name"], ["size", "Size"], ["mtime", "Modified"]];
    for (const [key, label] of cols) {
      const th = el("th", { scope: "col" });
      const arrow = sortKey === key ? (sortDir > 0 ? " ▲" : " ▼") : "";
      th.setAttribute("aria-sort", sortKey === key ? (sortDir > 0 ? "ascending" : "descending") : "none");
      th.appendChild(button(label + arrow, () => {
        if (sortKey === key) sortDir = -sortDir; else { sortKey = key; sortDir = 1; }
        render();
      }, { class: "sort", "data-sort": key }));
      tr.appendChild(th);
    }
    tr.appendChild(el("th", { scope: "col" }, "Actions"));
    thead.appendChild(tr);
  }

  function render() {
    header();
    const tbody = document.querySelector("#list tbody");
    tbody.textContent = "";
    for (const e of sorted()) {
      const dir = e.kind === "dir";
      const tr = el("tr", { "data-name": e.name });
      const name = el("td", { class: "name" });
      const a = el("a", { href: childUrl(e.name, dir) }, e.name + (dir ? "/" : ""));
      name.appendChild(a);
      tr.appendChild(name);
      tr.appendChild(el("td", { class: "size" }, dir ? "" : human(e.size)));
      tr.appendChild(el("td", { class: "mtime" }, when(e.mtime_unix)));
      const act = el("td", { class: "actions" });
      if (dir) {
        act.appendChild(el("a", { href: childUrl(e.name, true) + "?tar", class: "download", "aria-label": "Download " + e.name + " as tar" }, "Download"));
      } else {
        act.appendChild(el("a", { href: childUrl(e.name, false) + "?download", class: "download", download: e.name, "aria-label": "Download " + e.name }, "Download"));
      }
      if (canLink && perms.read) {
        act.appendChild(button("Share", () => share(e), { class: "share", "aria-label": "Copy a share link to " + e.name }));
      }
      if (perms.upload && perms.delete) {
        act.appendChild(button("Rename", () => rename(e), { class: "rename", "aria-label": "Rename " + e.name }));
      }
      if (perms.delete) {
        act.appendChild(button("Delete", () => remove(e), { class: "delete", "aria-label": "Delete " + e.name }));
      }
      tr.appendChild(act);
      tbody.appendChild(tr);
    }
  }

  async function remove(e) {
    if (!confirm("Delete " + e.name + (e.kind === "dir" ? " and everything in it" : "") + "?")) return;
    const res = await call("DELETE", childUrl(e.name, e.kind === "dir"));
    if (res.ok) { say("deleted " + e.name); refresh(); }
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
    const url = location.origin + made.url;
    const s = document.getElementById("status");
    s.className = "";
    s.textContent = "share link to " + e.name + ": ";
    const box = el("input", { id: "share-url", readonly: "", value: url, "aria-label": "Share link to " + e.name });
    s.appendChild(box);
    box.select();
    try {
      await navigator.clipboard.writeText(url);
      s.append(" (copied)");
    } catch (err) {
      s.append(" (select and copy it)");
    }
  }

  async function rename(e) {
    const to = prompt("New name for " + e.name, e.name);
    if (!to || to === e.name) return;
    if (to.includes("/")) { say("a name cannot contain /", true); return; }
    const res = await call("MOVE", childUrl(e.name, false), {
      headers: { "Destination": here + encodeSegment(to), "Overwrite": "F" },
    });
    if (res.ok) { say("renamed " + e.name + " to " + to); refresh(); }
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

  function tools() {
    const box = document.getElementById("tools");
    const filterInput = el("input", { id: "filter", type: "search", placeholder: "Filter", "aria-label": "Filter names" });
    filterInput.addEventListener("input", () => { filter = filterInput.value; render(); });
    box.appendChild(filterInput);
    if (perms.upload) {
      const files = el("input", { id: "file-input", type: "file", multiple: "", class: "visually-hidden" });
      files.addEventListener("change", () => {
        uploadAll(Array.from(files.files).map((f) => [f, f.name]));
        files.value = "";
      });
      const folder = el("input", { id: "folder-input", type: "file", multiple: "", class: "visually-hidden" });
      folder.webkitdirectory = true;
      folder.addEventListener("change", () => {
        uploadAll(Array.from(folder.files).map((f) => [f, f.webkitRelativePath || f.name]));
        folder.value = "";
      });
      box.append(files, folder,
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
        const entries = items.map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
        if (entries.length) { for (const e of entries) await walk(e, "", out); }
        else for (const f of Array.from(ev.dataTransfer.files)) out.push([f, f.name]);
        uploadAll(out);
      });
    }
    if (perms.chat) {
      box.appendChild(button("Chat", toggleChat, { id: "chat-toggle", "aria-controls": "chat", "aria-expanded": "false" }));
    }
    box.appendChild(el("span", { id: "status", role: "status" }));
  }

  // ---- chat --------------------------------------------------------------

  let ws = null;
  let backoff = 500;
  let wanted = false;

  function chatLine(text, kind) {
    const log = document.getElementById("chat-log");
    const line = el("li", { class: kind || "" }, text);
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
    if (f && perms.read) f.append(" · ", el("a", { href: here + "?tar", class: "download-folder" }, "download this folder"));
  }

  account();
  tools();
  footer();
  if (perms.read) refresh();
})();
