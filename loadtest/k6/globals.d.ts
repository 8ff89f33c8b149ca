// Ambient declarations for the k6 runtime that @types/k6 does not provide.
//
// k6 exposes a `console` object (log/info/warn/error/debug), but @types/k6 leaves it to the DOM or Node
// typings, and this project deliberately compiles against the plain ES2020 library (no DOM, no Node) so
// that browser or Node APIs k6 lacks (fetch, setImmediate, process, Buffer, ...) are type errors.
// Type-only file: k6 never loads it.

declare global {
  interface K6Console {
    log(...args: unknown[]): void;
    info(...args: unknown[]): void;
    warn(...args: unknown[]): void;
    error(...args: unknown[]): void;
    debug(...args: unknown[]): void;
  }

  // `var` (not let/const) is what declares a property of globalThis.
  var console: K6Console;
}

export {};
