// tekton-mlops dashboard: what a page needs beyond its server-rendered HTML.
// - the element marked data-live is fetched again every POLL_MS with the ETag it came with
//   (unchanged: a 304, nothing to do) until the server says the run finished;
// - a step's log opens in place (its link still works without this script);
// - a task named in the address (#task-x, from the graph) opens.
"use strict";

const POLL_MS = 2000;

function openTarget() {
  const id = decodeURIComponent(location.hash.slice(1));
  const target = id && document.getElementById(id);
  if (target && target.tagName === "DETAILS") {
    target.open = true;
  }
}

async function loadLog(link, panel) {
  const answer = await fetch(link.dataset.log, { cache: "no-store" });
  if (!answer.ok) {
    panel.textContent = `The log could not be read (${answer.status}).`;
    return true;
  }
  const log = await answer.json();
  panel.replaceChildren();
  if (log.truncated) {
    const note = document.createElement("p");
    note.className = "note";
    note.append(`The last ${Math.floor(new TextEncoder().encode(log.text).length / 1024)} KB of ${Math.floor(log.size / 1024)} KB: `);
    const whole = document.createElement("a");
    whole.href = log.file;
    whole.textContent = "the whole log";
    note.append(whole);
    panel.append(note);
  }
  const pre = document.createElement("pre");
  pre.className = "log";
  pre.tabIndex = 0;
  pre.textContent = log.text || (log.finished ? "(empty)" : "(nothing yet)");
  panel.append(pre);
  pre.scrollTop = pre.scrollHeight;  // the end of a log is where a failure says why
  return log.finished;
}

const following = new Map();  // panel id -> timer of a log still being written

function follow(link, panel) {
  clearInterval(following.get(panel.id));
  const timer = setInterval(async () => {
    if (panel.hidden || !panel.isConnected || await loadLog(link, panel)) {
      clearInterval(timer);
      following.delete(panel.id);
    }
  }, POLL_MS);
  following.set(panel.id, timer);
}

async function toggleLog(link) {
  const panel = document.getElementById(link.getAttribute("aria-controls"));
  if (!panel) {
    return false;
  }
  const opening = panel.hidden || link.getAttribute("aria-expanded") !== "true";
  link.setAttribute("aria-expanded", String(opening));
  panel.hidden = !opening;
  if (opening && !(await loadLog(link, panel))) {
    follow(link, panel);
  }
  return true;
}

document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest("a.step-link[data-log]");
  if (link && !event.ctrlKey && !event.metaKey && !event.shiftKey) {
    event.preventDefault();
    toggleLog(link).catch(() => { location.href = link.href; });
  }
});

async function poll(live) {
  const answer = await fetch(live.dataset.live, {
    cache: "no-store",
    headers: { "If-None-Match": live.dataset.etag },
  });
  if (answer.status === 304 || !answer.ok) {
    return;
  }
  const html = await answer.text();
  // What the reader had open stays open: tasks, logs, and where the page was scrolled.
  const opened = new Map([...live.querySelectorAll("details[id]")].map((d) => [d.id, d.open]));
  const logs = [...live.querySelectorAll("a.step-link[aria-expanded=true]")].map((a) => a.getAttribute("aria-controls"));
  const x = window.scrollX, y = window.scrollY;
  live.innerHTML = html;
  live.dataset.etag = answer.headers.get("ETag") || "";
  live.dataset.finished = answer.headers.get("X-Finished") || "false";
  for (const [id, open] of opened) {
    const details = document.getElementById(id);
    if (details) details.open = open;
  }
  for (const id of logs) {
    const link = live.querySelector(`a.step-link[aria-controls="${CSS.escape(id)}"]`);
    if (link && link.getAttribute("aria-expanded") !== "true") {
      toggleLog(link);
    }
  }
  window.scrollTo(x, y);
  // One short sentence for a screen reader, not the whole region read again.
  const said = document.getElementById("live-status");
  const status = live.querySelector(".facts .status");
  if (said && status) said.textContent = `Status: ${status.textContent.trim()}`;
}

function startPolling() {
  const live = document.getElementById("live");
  if (!live || live.dataset.finished === "true") {
    return;
  }
  const timer = setInterval(() => {
    if (live.dataset.finished === "true") {
      clearInterval(timer);
    } else if (document.visibilityState === "visible") {
      poll(live).catch(() => {});  // the server stopped: the page stays as it was
    }
  }, POLL_MS);
}

window.addEventListener("hashchange", openTarget);
document.addEventListener("DOMContentLoaded", () => {
  openTarget();
  startPolling();
});
