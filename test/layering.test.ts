// The source tree is layered: core ← storage ← shard ← routing ← front ← node. A module imports
// only from its own layer or the layers below it (config is below all of them). This test reads
// every import of every source file and fails on an import that points up.
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'

const ROOT = path.join(__dirname, '..', '..')

// Layer of a source path (relative to the repo root, no extension); higher numbers sit above.
const LAYERS: Array<[RegExp, string, number]> = [
  [/^config\//, 'config', 0],
  [/^src\/core\//, 'core', 1],
  [/^src\/storage\//, 'storage', 2],
  [/^actors\//, 'shard', 3],
  [/^src\/routing\//, 'routing', 4],
  [/^cluster\//, 'routing', 4],
  [/^src\/front\//, 'front', 5],
  [/^src\/node\//, 'node', 6],
  [/^src\/main$/, 'node', 6]
]

function layerOf (rel: string): { name: string, rank: number } | null {
  for (const [re, name, rank] of LAYERS) if (re.test(rel)) return { name, rank }
  return null
}

function sources (dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) sources(p, out)
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p)
  }
  return out
}

const files = ['src', 'actors', 'cluster', 'config'].flatMap((d) => fs.existsSync(path.join(ROOT, d)) ? sources(path.join(ROOT, d)) : [])

t.test('every source file belongs to a layer', async (t) => {
  const homeless = files.map((f) => path.relative(ROOT, f).replace(/\.ts$/, '')).filter((rel) => layerOf(rel) === null)
  t.same(homeless, [], 'files outside core, storage, actors (shard), routing, front, node or config')
})

t.test('no import points to a higher layer', async (t) => {
  const upward: string[] = []
  let imports = 0
  for (const file of files) {
    const rel = path.relative(ROOT, file).replace(/\.ts$/, '')
    const from = layerOf(rel)
    if (from === null) continue
    const text = fs.readFileSync(file, 'utf8')
    for (const m of text.matchAll(/(?:from\s+|import\()'(\.[^']+)'/g)) {
      imports++
      const target = path.relative(ROOT, path.resolve(path.dirname(file), m[1]))
      const to = layerOf(target)
      if (to !== null && to.rank > from.rank) upward.push(`${rel} (${from.name}) imports ${target} (${to.name})`)
    }
  }
  t.ok(imports > 50, `read ${imports} relative imports`)
  t.same(upward, [], 'imports that point up a layer')
})

t.test('the client stands alone: it imports nothing of the server', async (t) => {
  const dir = path.join(ROOT, 'client')
  const outside: string[] = []
  for (const file of sources(dir)) {
    const text = fs.readFileSync(file, 'utf8')
    for (const m of text.matchAll(/(?:from\s+|import\()'([^']+)'/g)) {
      const spec = m[1]
      if (spec.startsWith('.')) {
        if (path.relative(dir, path.resolve(path.dirname(file), spec)).startsWith('..')) outside.push(`${path.relative(ROOT, file)} imports ${spec}`)
      } else if (!spec.startsWith('node:') && spec !== 'ws') {
        outside.push(`${path.relative(ROOT, file)} imports the package ${spec}`)
      }
    }
  }
  t.same(outside, [], 'client/ imports only client/, node: built-ins and ws')
})
