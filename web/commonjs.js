// A small CommonJS loader: Debian's node-xterm ships xterm.js as CommonJS
// modules (lib/*.js with require()), not as a browser bundle. loadModule
// fetches a module and, first, everything it requires (found by its
// require("...") calls), then runs them in order with require() served from
// what was fetched.
"use strict";

const commonjs = (() => {
  const sources = new Map();  // resolved path -> source text
  const modules = new Map();  // resolved path -> module object once run

  function resolve(from, name) {
    const parts = from.split("/").slice(0, -1);
    for (const part of name.split("/")) {
      if (part === "..") parts.pop();
      else if (part !== ".") parts.push(part);
    }
    const path = parts.join("/");
    return path.endsWith(".js") ? path : path + ".js";
  }

  function requiredNames(source) {
    return [...source.matchAll(/require\("([^"]+)"\)/g)].map((match) => match[1]);
  }

  async function fetchTree(path) {
    if (sources.has(path)) return;
    sources.set(path, null);  // claimed: a cycle does not fetch twice
    const response = await fetch(path);
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    const source = await response.text();
    sources.set(path, source);
    await Promise.all(requiredNames(source).map((name) => fetchTree(resolve(path, name))));
  }

  function run(path) {
    if (modules.has(path)) return modules.get(path).exports;
    const module = { exports: {} };
    modules.set(path, module);
    const body = new Function("exports", "require", "module", sources.get(path) + `\n//# sourceURL=${path}`);
    body(module.exports, (name) => run(resolve(path, name)), module);
    return module.exports;
  }

  return {
    async loadModule(path) {
      const absolute = new URL(path, document.baseURI).pathname;
      await fetchTree(absolute);
      return run(absolute);
    },
  };
})();
