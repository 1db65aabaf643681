// Preload (`node --require`) for the npm reference server `server-everything`.
//
// That server calls `app.listen(PORT)`, which binds every interface. This preload rewrites every
// `net.Server#listen` to 127.0.0.1 on an ephemeral port, writes the bound port to
// $SAMPLE_SERVER_INFO_FILE (atomically) once listening, and serves a small test control API
// (`/_control/health|counters|reset`) in front of the app, counting requests like the Python
// sample servers do (method, path, whether an Authorization header came, status; no secrets).
"use strict";

const fs = require("node:fs");
const http = require("node:http");
const net = require("node:net");

const INFO_FILE = process.env.SAMPLE_SERVER_INFO_FILE;
const MAX_LOGGED = 5000;

function freshCounters() {
  return { kind: "everything", requests: [], requests_total: 0, requests_with_authorization: 0 };
}
let counters = freshCounters();

function writeInfo(port) {
  if (!INFO_FILE) return;
  const origin = `http://127.0.0.1:${port}`;
  const info = { origin, url: `${origin}/mcp`, ports: [port] };
  fs.writeFileSync(`${INFO_FILE}.partial`, JSON.stringify(info));
  fs.renameSync(`${INFO_FILE}.partial`, INFO_FILE);
  process.stdout.write(`LISTENING ${port}\n`);
}

function sendJson(res, status, data) {
  const body = JSON.stringify(data);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function serveControl(req, res) {
  const name = req.url.split("?")[0].slice("/_control/".length);
  if (name === "health") return sendJson(res, 200, { ok: true, kind: "everything" });
  if (name === "counters") return sendJson(res, 200, counters);
  if (name === "reset") {
    counters = freshCounters();
    return sendJson(res, 200, { ok: true });
  }
  return sendJson(res, 404, { error: `unknown control '${name}'`, known: ["counters", "health", "reset"] });
}

function observe(req, res) {
  const entry = {
    port: req.socket.localPort,
    method: req.method,
    path: req.url.split("?")[0],
    authorization: "authorization" in req.headers,
    status: null,
    rpc: null,
  };
  counters.requests.push(entry);
  if (counters.requests.length > MAX_LOGGED) counters.requests.shift();
  counters.requests_total += 1;
  if (entry.authorization) counters.requests_with_authorization += 1;
  res.on("finish", () => {
    entry.status = res.statusCode;
  });
}

// Route every request through the control API / request log before the app's own listeners.
function wrapRequestListeners(server) {
  const appListeners = server.listeners("request");
  server.removeAllListeners("request");
  server.on("request", (req, res) => {
    if (req.url.startsWith("/_control/")) return serveControl(req, res);
    observe(req, res);
    for (const listener of appListeners) listener.call(server, req, res);
  });
}

const originalListen = net.Server.prototype.listen;
net.Server.prototype.listen = function listen(...args) {
  const callback = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
  if (this instanceof http.Server) wrapRequestListeners(this);
  this.once("listening", () => writeInfo(this.address().port));
  return originalListen.call(this, { host: "127.0.0.1", port: 0 }, callback);
};

// Exit with the parent, so a killed test run leaves no server behind.
const parentPid = process.ppid;
setInterval(() => {
  if (process.ppid !== parentPid) process.exit(0);
}, 1000).unref();
