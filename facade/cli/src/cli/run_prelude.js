// The runtime the `run` host gives a script: console, setTimeout and
// clearTimeout, require, and `@system.uploadtask` as the page documents it.
// The host (Rust) provides `__host` and calls `__deliver` and `__fireTimer`.
(function () {
  "use strict";
  const host = globalThis.__host;
  delete globalThis.__host;

  function show(value) {
    if (typeof value === "string") return value;
    if (value instanceof Error) return value.name + ": " + value.message + (value.stack ? "\n" + value.stack.trimEnd() : "");
    if (typeof value === "function") return "[Function" + (value.name ? ": " + value.name : "") + "]";
    try {
      const text = JSON.stringify(value);
      return text === undefined ? String(value) : text;
    } catch (e) {
      return String(value);
    }
  }
  const line = (level) => (...values) => host.log(level, values.map(show).join(" "));
  globalThis.console = { log: line(1), info: line(1), debug: line(1), warn: line(2), error: line(2) };

  function report(where, error) {
    host.log(2, "Uncaught error in " + where + ": " + show(error));
  }

  const timers = new Map();
  let nextTimer = 1;
  globalThis.setTimeout = function (callback, delay, ...args) {
    const id = nextTimer++;
    timers.set(id, () => callback(...args));
    host.setTimer(id, Math.max(0, Number(delay) || 0));
    return id;
  };
  globalThis.clearTimeout = function (id) {
    if (timers.delete(id)) host.clearTimer(id);
  };
  Object.defineProperty(globalThis, "__fireTimer", {
    value: function (id) {
      const run = timers.get(id);
      if (!run) return;
      timers.delete(id);
      try { run(); } catch (e) { report("a setTimeout callback", e); }
    },
  });

  const tasks = new Map();
  function call(name, fn, ...args) {
    if (typeof fn !== "function") return;
    try { fn(...args); } catch (e) { report(name, e); }
  }
  Object.defineProperty(globalThis, "__deliver", {
    value: function (kind, id, payload) {
      const task = tasks.get(id);
      if (!task) return;
      switch (kind) {
        case "progress":
          for (const cb of task.listeners.slice()) call("an onProgressUpdate callback", cb, JSON.parse(payload));
          break;
        case "headers":
          for (const cb of task.headListeners.slice()) call("an onHeadersReceived callback", cb, JSON.parse(payload));
          break;
        case "success":
          call("success", task.options.success, JSON.parse(payload));
          break;
        case "fail": {
          const { data, code } = JSON.parse(payload);
          call("fail", task.options.fail, data, code);
          break;
        }
        case "complete":
          tasks.delete(id);
          call("complete", task.options.complete);
          break;
      }
    },
  });

  function remove(list, callback) {
    if (callback === undefined) { list.length = 0; return; }
    for (let i = list.length - 1; i >= 0; i--) if (list[i] === callback) list.splice(i, 1);
  }

  class UploadTask {
    #id;
    constructor(id) { this.#id = id; }
    abort() { host.abort(this.#id); }
    onProgressUpdate(callback) {
      const task = tasks.get(this.#id);
      if (task && typeof callback === "function") task.listeners.push(callback);
    }
    offProgressUpdate(callback) {
      const task = tasks.get(this.#id);
      if (task) remove(task.listeners, callback);
    }
    onHeadersReceived(callback) {
      const task = tasks.get(this.#id);
      if (task && typeof callback === "function") task.headListeners.push(callback);
    }
    offHeadersReceived(callback) {
      const task = tasks.get(this.#id);
      if (task) remove(task.headListeners, callback);
    }
  }

  const uploadtask = {
    uploadFile(options) {
      options = options || {};
      const plain = {};
      for (const key of Object.keys(options)) if (typeof options[key] !== "function") plain[key] = options[key];
      let json;
      try { json = JSON.stringify(plain); } catch (e) { json = "{bad options: " + String(e) + "}"; }
      const id = host.upload(json);
      tasks.set(id, { options, listeners: [], headListeners: [] });
      return new UploadTask(id);
    },
  };
  Object.defineProperty(globalThis, "__uploadtask", { value: uploadtask });
  // The page's examples use `uploadtask` as the runtime gives it.
  globalThis.uploadtask = uploadtask;
  globalThis.require = function (name) {
    if (name === "@system.uploadtask") return uploadtask;
    throw new Error("Cannot find module '" + name + "'");
  };
})();
