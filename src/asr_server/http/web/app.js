// The page uses only the public API: POST /api/v1/asr/task, GET /api/v1/asr/task/{id}
// (?progress=true while it runs, ?format= for downloads), GET /v1/models for the model choice. Audio stays in the browser for playback.
"use strict";

const POLL_MS = 1000;
const $ = (selector, root = document) => root.querySelector(selector);

function authHeaders() {
  const key = $("#api_key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// Speaker colours: distinct hues, each dark enough for white text on it (WCAG AA).
const SPEAKER_COLOURS = ["#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#0e7490", "#57606a"];

function clock(seconds) {
  const s = Math.max(0, seconds);
  const m = Math.floor(s / 60);
  return `${m}:${(s % 60).toFixed(1).padStart(4, "0")}`;
}

function setStatus(row, text, kind) {
  const status = $(".status", row);
  status.textContent = text;
  row.dataset.state = kind;
}

// The server's error, readable: its JSON "error" (a 4xx) or the traceback's last line (a 500).
function showError(row, summary, details) {
  setStatus(row, "error", "error");
  $("progress", row).hidden = true;
  const box = $(".error", row);
  box.hidden = false;
  $(".summary", box).textContent = summary;
  const more = $("details", box);
  more.hidden = !details;
  $("pre", box).textContent = details || "";
}

// "package.module.SomeError: what happened" -> "what happened" (the class is in Details).
function lastLine(traceback) {
  const lines = String(traceback).trim().split("\n").filter((l) => l.trim());
  if (!lines.length) return "The task failed.";
  const last = lines[lines.length - 1].trim();
  const match = last.match(/^[A-Za-z_][\w.]*: (.+)$/);
  return match ? match[1] : last;
}

async function readBody(response) {
  try {
    return await response.json();
  } catch {
    return {};
  }
}

async function submit(file) {
  const row = $("#task-row").content.firstElementChild.cloneNode(true);
  $(".name", row).textContent = file.name;
  $("#tasks").append(row);
  $("#empty").hidden = true;
  setStatus(row, "uploading", "uploading");

  const form = new FormData();
  form.append("file", file, file.name);
  for (const name of ["language", "task", "model"]) {
    const value = $(`#${name}`).value;
    if (value) form.append(name, value);
  }
  if ($("#word_timestamps").checked) form.append("word_timestamps", "true");
  if ($("#diarize").checked) form.append("diarize", "true");

  let response;
  try {
    response = await fetch("/api/v1/asr/task", { method: "POST", body: form, headers: authHeaders() });
  } catch (err) {
    showError(row, `Upload failed: ${err.message}`);
    return;
  }
  const body = await readBody(response);
  if (response.status !== 201) {
    showError(row, `Not accepted (${response.status}): ${body.error || response.statusText}`);
    return;
  }
  row.dataset.taskId = body.task_id;
  setStatus(row, "queued", "queued");
  poll(row, file);
}

async function poll(row, file) {
  const id = row.dataset.taskId;
  let response;
  try {
    response = await fetch(`/api/v1/asr/task/${id}?progress=true`, { headers: authHeaders() });
  } catch {
    setTimeout(() => poll(row, file), POLL_MS); // the server may be restarting: keep asking
    return;
  }
  const body = await readBody(response);
  if (response.status === 202) {
    const bar = $("progress", row);
    if (body.queue_position > 0) {
      setStatus(row, `queued (${body.queue_position} ahead)`, "queued");
    } else {
      setStatus(row, `processing ${Math.round(100 * (body.progress || 0))}%`, "processing");
      bar.hidden = false;
      bar.value = body.progress || 0;
    }
    setTimeout(() => poll(row, file), POLL_MS);
  } else if (response.status === 200) {
    showResult(row, file, body.result);
  } else if (response.status === 500) {
    showError(row, lastLine(body.result), body.result);
  } else {
    showError(row, `Unexpected answer ${response.status}: ${body.status || body.error || ""}`);
  }
}

function showResult(row, file, result) {
  setStatus(row, "done", "done");
  $("progress", row).hidden = true;
  const done = $(".done", row);
  done.hidden = false;
  row.result = result;

  const audio = $("audio", done);
  audio.src = URL.createObjectURL(file);
  let stopAt = null;
  audio.addEventListener("timeupdate", () => {
    if (stopAt !== null && audio.currentTime >= stopAt) {
      audio.pause();
      stopAt = null;
    }
  });

  // With speaker labels, each speaker has a colour of its own (in order of first speech).
  const speakers = result.speakers || [];
  const list = $(".segments", done);
  for (const segment of result.segments) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "segment";
    button.dataset.start = segment.start;
    button.dataset.end = segment.end;
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = `${clock(segment.start)} – ${clock(segment.end)}`;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = segment.text.trim();
    button.append(time, text);
    if (segment.speaker) {
      const speaker = document.createElement("span");
      speaker.className = "speaker";
      speaker.textContent = segment.speaker;
      button.prepend(speaker);
      button.classList.add("labelled");
      button.style.setProperty("--speaker", SPEAKER_COLOURS[speakers.indexOf(segment.speaker) % SPEAKER_COLOURS.length]);
    }
    button.addEventListener("click", () => {
      for (const other of list.querySelectorAll(".segment[aria-current]")) other.removeAttribute("aria-current");
      button.setAttribute("aria-current", "true");
      stopAt = segment.end;
      audio.currentTime = segment.start;
      audio.play().catch((err) => {
        // AbortError: the user paused or chose another segment before playback began.
        if (err.name !== "AbortError") showNotice(row, `Cannot play this file here: ${err.message}`, true);
      });
    });
    item.append(button);
    list.append(item);
  }
  if (!result.segments.length) {
    const item = document.createElement("li");
    item.textContent = "No speech found.";
    list.append(item);
  }

  for (const button of done.querySelectorAll("button[data-format]")) {
    button.addEventListener("click", () => download(row, button.dataset.format));
  }
  $(".copy", done).addEventListener("click", () => copyText(row, result.text.trim()));
}

function showNotice(row, text, problem = false) {
  let notice = $(".notice", row);
  if (!notice) {
    notice = document.createElement("p");
    notice.className = "notice";
    notice.setAttribute("role", "status");
    $(".done", row).prepend(notice);
  }
  notice.textContent = text;
  notice.classList.toggle("problem", problem);
}

async function download(row, format) {
  const id = row.dataset.taskId;
  const response = await fetch(`/api/v1/asr/task/${id}?format=${format}`, { headers: authHeaders() });
  if (!response.ok) {
    showNotice(row, `Download failed (${response.status})`, true);
    return;
  }
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${id}.${format}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

async function copyText(row, text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement("textarea"); // clipboard API refused: the old way
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  showNotice(row, "Text copied.");
}

function submitAll(files) {
  for (const file of files) submit(file);
}

document.addEventListener("DOMContentLoaded", () => {
  const input = $("#files");
  const drop = $("#drop");
  input.addEventListener("change", () => {
    submitAll([...input.files]);
    input.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    submitAll([...event.dataTransfer.files]);
  });
  const key = $("#api_key");
  key.value = sessionStorage.getItem("asr-api-key") || "";
  key.addEventListener("change", () => sessionStorage.setItem("asr-api-key", key.value));
  listModels();
});

// A server of several models offers them; the first listed after whisper-1 is its default.
async function listModels() {
  let body;
  try {
    const response = await fetch("/v1/models", { headers: authHeaders() });
    if (!response.ok) return;
    body = await response.json();
  } catch {
    return;
  }
  const ids = (body.data || []).map((m) => m.id).filter((id) => id !== "whisper-1");
  if (ids.length < 2) return;
  const select = $("#model");
  select.replaceChildren(...ids.map((id) => new Option(id, id)));
  $("#model-choice").hidden = false;
}
