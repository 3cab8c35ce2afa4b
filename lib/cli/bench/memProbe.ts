// Preloaded into a server child by the memory scenario (`node --expose-gc --import <this>`): on
// SIGUSR2 it runs two full GCs and prints one `@@bench-mem {…}` line with process.memoryUsage()
// on stderr. It changes nothing else in the process; without this preload SIGUSR2 is never sent.
const gc = (globalThis as { gc?: () => void }).gc;
process.on('SIGUSR2', () => {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  process.stderr.write(`@@bench-mem ${JSON.stringify({ gc: gc ? 1 : 0, rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers })}\n`);
});
