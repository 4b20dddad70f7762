#!/usr/bin/env node
'use strict'
// The one test command (README, .ci/run): build, run every tap file under dist/test and end
// with the plain summary line `N passed, N failed`, which is what CI reads.
// `npm test -- test/wal.test.ts` runs only the files named.
const { spawnSync, spawn } = require('node:child_process')
const path = require('node:path')
const fs = require('node:fs')

const root = path.join(__dirname, '..')
const build = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' })
if (build.status !== 0) {
  console.log('0 passed, 1 failed')
  process.exit(1)
}

const named = process.argv.slice(2).map(f => path.join('dist', f.replace(/\.ts$/, '.js')))
const files = named.length > 0 ? named : listTests(path.join(root, 'dist', 'test'))
const tapBin = path.join(root, 'node_modules', 'tap', 'dist', 'esm', 'run.mjs')
const child = spawn(process.execPath, [
  tapBin, '--disable-coverage', '--reporter=tap', '--timeout=600', '--jobs=2',
  ...files
], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })

let tail = ''
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk)
  tail = (tail + chunk.toString('utf8')).slice(-4096)
})
child.on('close', (code) => {
  // tap's last comment line: `# { total: 12, pass: 11, fail: 1 }` (skip/todo appear when non-zero).
  const m = /#\s*\{([^}]*)\}\s*\n[^{]*$/.exec(tail)
  const field = (name) => {
    const f = m && new RegExp(`\\b${name}:\\s*(\\d+)`).exec(m[1])
    return f ? Number(f[1]) : 0
  }
  let passed = field('pass')
  let failed = field('fail')
  if (code !== 0 && failed === 0) failed = 1 // a crash or a timeout still counts as a failure
  if (!m && code === 0) passed = 0
  console.log(`${passed} passed, ${failed} failed`)
  process.exit(code === 0 && failed === 0 ? 0 : 1)
})

function listTests (dir) {
  const out = []
  if (!fs.existsSync(dir)) return out
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) out.push(...listTests(p))
    else if (e.name.endsWith('.test.js')) out.push(path.relative(root, p))
  }
  return out.sort()
}
