// The reference MCP client (agent-backend 0.13.2's
// RemoteFilesystemBackend.getMCPClient, @modelcontextprotocol/sdk over
// Streamable HTTP, with its X-Root-Dir, X-Scope-Path and bearer headers)
// lists and calls tools on a daemon and prints one JSON line per step.
//
// usage: node refmcp.mjs <node_modules dir> <host> <port> <token> <rootDir>
import { pathToFileURL } from 'node:url'
import { join } from 'node:path'

const [modules, host, port, token, rootDir] = process.argv.slice(2)
const ab = await import(pathToFileURL(join(modules, 'agent-backend', 'dist', 'index.js')).href)
const b = new ab.RemoteFilesystemBackend({ rootDir, host, port: Number(port), authToken: token, reconnection: { enabled: false } })

const out = []
const text = (r) => (r.content ?? []).filter(c => c.type === 'text').map(c => c.text).join('')
async function step(name, fn) {
  try {
    out.push({ step: name, ok: true, value: await fn() })
  } catch (e) {
    out.push({ step: name, ok: false, message: String(e.message).slice(0, 200) })
  }
}

const c = await b.getMCPClient()
await step('list tools', async () => (await c.listTools()).tools.map(t => t.name).sort())
await step('write_file', async () => { const r = await c.callTool({ name: 'write_file', arguments: { path: 'notes/a.txt', content: 'one\ntwo\nthree\n' } }); return [r.isError ?? false, text(r)] })
await step('read_text_file', async () => { const r = await c.callTool({ name: 'read_text_file', arguments: { path: 'notes/a.txt' } }); return [r.isError ?? false, text(r)] })
await step('list_directory', async () => { const r = await c.callTool({ name: 'list_directory', arguments: { path: '.' } }); return [r.isError ?? false, text(r)] })
await step('grep', async () => { const r = await c.callTool({ name: 'grep', arguments: { pattern: 'tw', path: '.' } }); return [r.isError ?? false, text(r)] })
await step('exec', async () => { const r = await c.callTool({ name: 'exec', arguments: { command: 'cat notes/a.txt | wc -l' } }); return [r.isError ?? false, text(r).trim()] })
await step('exec dangerous', async () => { const r = await c.callTool({ name: 'exec', arguments: { command: 'sudo ls' } }); return r.isError ?? false })
await step('escape', async () => { const r = await c.callTool({ name: 'read_text_file', arguments: { path: '../outside' } }); return r.isError ?? false })
await c.close()

const s = await b.getMCPClient('users/alice')
await step('scoped write', async () => { const r = await s.callTool({ name: 'write_file', arguments: { path: 'mine.txt', content: 'alice' } }); return r.isError ?? false })
await step('scoped list', async () => { const r = await s.callTool({ name: 'list_directory', arguments: { path: '.' } }); return [r.isError ?? false, text(r)] })
await s.close()
await step('parent sees scoped file', async () => b.read('users/alice/mine.txt'))

await b.destroy()
for (const o of out) console.log(JSON.stringify(o))
process.exit(0)
