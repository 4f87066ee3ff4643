// The reference client (agent-backend 0.13.2's RemoteFilesystemBackend) runs
// a fixed sequence of operations against a daemon and prints a transcript
// (one JSON line per step) on stdout. The Go interop test runs it against
// the reference daemon and against this project's, and compares.
//
// usage: node refclient.mjs <node_modules dir> <host> <port> <token> <rootDir>
import { pathToFileURL } from 'node:url'
import { join } from 'node:path'

const [modules, host, port, token, rootDir] = process.argv.slice(2)
const ab = await import(pathToFileURL(join(modules, 'agent-backend', 'dist', 'index.js')).href)

const b = new ab.RemoteFilesystemBackend({
  rootDir, host, port: Number(port), authToken: token,
  preventDangerous: true, operationTimeoutMs: 20000,
  reconnection: { enabled: false },
})

const out = []
const norm = (v) => typeof v === 'string' ? v.split(rootDir).join('<root>') : v
async function step(name, fn) {
  try {
    const v = await fn()
    out.push({ step: name, ok: true, value: norm(v) })
  } catch (e) {
    out.push({ step: name, ok: false, code: e.code ?? null, message: norm(String(e.message)).slice(0, 120) })
  }
}

const bytes = Buffer.alloc(1024)
for (let i = 0; i < bytes.length; i++) bytes[i] = i % 256
const big = Buffer.alloc(1 << 20, 'abcdefghijklmnop')

await step('write text', () => b.write('notes/a.txt', 'hello, world\n'))
await step('read text', () => b.read('notes/a.txt'))
await step('write binary', () => b.write('bin/all.bin', bytes))
await step('read binary', async () => Buffer.compare(await b.read('bin/all.bin', { encoding: 'buffer' }), bytes) === 0)
await step('write 1 MiB', () => b.write('big.bin', big))
await step('read 1 MiB', async () => Buffer.compare(await b.read('big.bin', { encoding: 'buffer' }), big) === 0)
await step('overwrite', () => b.write('notes/a.txt', 'short'))
await step('read again', () => b.read('notes/a.txt'))
await step('absolute path inside', () => b.read(rootDir + '/notes/a.txt'))
await step('mkdir -p', () => b.mkdir('d/e/f', { recursive: true }))
await step('exists dir', () => b.exists('d/e/f'))
await step('exists missing', () => b.exists('nope'))
await step('stat file', async () => { const s = await b.stat('notes/a.txt'); return [s.size, s.isFile(), s.isDirectory()] })
await step('stat dir', async () => { const s = await b.stat('d/e'); return [s.isFile(), s.isDirectory()] })
await step('readdir root', async () => (await b.readdir('.')).sort())
await step('readdir nested', async () => (await b.readdir('d')).sort())
await step('readdirWithStats', async () => (await b.readdirWithStats('notes')).map(e => [e.name, e.stats.size]))
await step('rename', () => b.rename('notes/a.txt', 'moved/deeper/b.txt'))
await step('read renamed', () => b.read('moved/deeper/b.txt'))
await step('exists old', () => b.exists('notes/a.txt'))
await step('touch', () => b.touch('empty.txt'))
await step('read empty', () => b.read('empty.txt'))
await step('read missing', () => b.read('missing.txt'))
await step('readdir missing', () => b.readdir('missing-dir'))
await step('escape', () => b.read('../outside'))
await step('exec echo', () => b.exec('echo hello; echo err >&2'))
await step('exec pwd', () => b.exec('pwd'))
await step('exec files', () => b.exec('ls moved/deeper'))
await step('exec fail', () => b.exec('echo out; echo bad >&2; exit 3'))
await step('exec cwd', () => b.exec('pwd', { cwd: rootDir + '/d/e' }))
await step('exec dangerous', () => b.exec('sudo ls'))
await step('exec buffer', async () => (await b.exec('printf abc', { encoding: 'buffer' })).toString('hex'))
await step('rm file', () => b.rm('big.bin'))
await step('rm recursive', () => b.rm('d', { recursive: true, force: true }))
await step('exists removed', () => b.exists('d'))
await step('rm missing force', () => b.rm('nothing-here', { force: true }))
const s = b.scope('tenants/one')
await step('scope write', () => s.write('x.txt', 'scoped'))
await step('scope read', () => s.read('x.txt'))
await step('parent sees scope', () => b.read('tenants/one/x.txt'))
await step('scope exec pwd', () => s.exec('pwd'))
await step('scope escape', () => s.read('../../notes'))
await step('final listing', async () => (await b.readdir('.')).sort())

await b.destroy()
for (const o of out) console.log(JSON.stringify(o))
process.exit(0)
