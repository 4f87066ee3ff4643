// Measures the reference client (agent-backend 0.13.2's
// RemoteFilesystemBackend) against a daemon: 4 KiB write and read round
// trips and 64 MiB write and read throughput, printed as Go-style
// benchmark lines so they sit beside `make bench` output.
//
// usage: node refbench.mjs <node_modules dir> <host> <port> <token> <rootDir> [label]
import { pathToFileURL } from 'node:url'
import { join } from 'node:path'

const [modules, host, port, token, rootDir, label = 'reference'] = process.argv.slice(2)
const ab = await import(pathToFileURL(join(modules, 'agent-backend', 'dist', 'index.js')).href)
const b = new ab.RemoteFilesystemBackend({ rootDir, host, port: Number(port), authToken: token, reconnection: { enabled: false } })

async function bench(name, n, fn, bytes = 0) {
  await fn() // warm up
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) await fn()
  const ns = Number(process.hrtime.bigint() - start) / n
  let line = `BenchmarkRefClient${name}/${label} \t${n}\t${ns.toFixed(0)} ns/op`
  if (bytes) line += `\t${(bytes / ns * 1e3).toFixed(2)} MB/s`
  console.log(line)
}

const small = Buffer.alloc(4096, 'x')
const big = Buffer.alloc(64 << 20, 'y')
await bench('Write4K', 200, () => b.write('dir/file.bin', small))
await bench('Read4K', 200, () => b.read('dir/file.bin', { encoding: 'buffer' }))
await bench('Write64M', 3, () => b.write('big.bin', big), big.length)
await bench('Read64M', 3, () => b.read('big.bin', { encoding: 'buffer' }), big.length)
await b.destroy()
process.exit(0)
