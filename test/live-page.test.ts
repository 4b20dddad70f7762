// The live page (GET /) in headless Chromium against a real node under load: it loads without a
// console error, its numbers move while increments and reads run, the rising counters and the
// lookup box work. A screenshot goes to test-artifacts/live-page.png.
import fs from 'node:fs'
import path from 'node:path'
import { chromium } from 'playwright-core'
import t from 'tap'
import { CounterStream } from '../client'
import { startNode } from './support/node-process'

const CHROMIUM = '/usr/bin/chromium'
const ARTIFACTS = path.join(__dirname, '..', '..', 'test-artifacts')

/** A page-side condition on the text of element `id` (as `v`), for waitForFunction. */
const shown = (id: string, condition: string): string => `(() => { const v = document.getElementById('${id}').textContent; return ${condition} })()`

t.test('live page under load', async (t) => {
  const node = await startNode(t, { env: { WORKERS: '2' } })
  await fetch(`${node.base}/v1/counter/lp/fixed/increment`, { method: 'POST', body: '{"by":5}' })

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // The flags keep Chromium off the network this machine does not have (it would log errors).
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.teardown(async () => await browser.close())
  const page = await browser.newPage()
  const problems: string[] = []
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`) })
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))

  const response = await page.goto(node.base + '/')
  t.equal(response?.status(), 200)
  t.match(response?.headers()['content-type'], /^text\/html/)
  await page.waitForFunction("document.getElementById('status').textContent === 'ready'")
  t.equal(await page.textContent('#shards'), '2')

  // Load: a stream of increments on a few hot keys, and reads, until the page has shown both moving.
  const stream = new CounterStream({ url: node.base, clientId: 'live-page-test' })
  let running = true
  const load = (async () => {
    let i = 0
    while (running) {
      for (let k = 0; k < 2000; k++) if (!stream.add('lp', `hot${i++ % 5}`)) await new Promise(resolve => stream.once('drain', resolve))
      await Promise.all(Array.from({ length: 20 }, async (_, k) => await (await fetch(`${node.base}/v1/counter/lp/hot${k % 5}`)).arrayBuffer()))
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    await stream.close()
  })()
  t.teardown(async () => { running = false; await load })

  const rate = (id: string) => async () => Number((await page.textContent(`#${id}`))?.replace('k', 'e3').replace('M', 'e6'))
  await page.waitForFunction(shown('increments', 'Number(v.replace("k", "e3").replace("M", "e6")) > 0'), null, { timeout: 20_000 })
  await page.waitForFunction(shown('reads', 'Number(v.replace("k", "e3").replace("M", "e6")) > 0'), null, { timeout: 20_000 })
  t.ok(await rate('increments')() > 0, 'increments/s moves')
  t.ok(await rate('reads')() > 0, 'reads/s moves')
  await page.waitForFunction(shown('p99', '/s$/.test(v)'), null, { timeout: 20_000 })
  t.match(await page.textContent('#p99'), /^(≤ [\d.]+ (ms|s)|> 5 s)$/, 'an HTTP p99 is shown')
  // The table fills as soon as any counter has a rate (lp:fixed may come first): wait for a hot key,
  // and let the assertion below name what was shown if none came.
  await page.waitForFunction("[...document.querySelectorAll('#top tr td:first-child')].some(c => /^lp:hot\\d$/.test(c.textContent))", null, { timeout: 30_000 }).catch(() => {})
  const topKeys = await page.$$eval('#top tr td:first-child', (cells) => cells.map(c => c.textContent))
  t.ok(topKeys.some(k => /^lp:hot\d$/.test(k ?? '')), `the hot keys rise: ${topKeys.join(', ')}`)

  await page.fill('#lookup-key', 'lp:fixed')
  await page.click('#lookup button')
  await page.waitForFunction(shown('lookup-result', "v !== ''"))
  t.equal(await page.textContent('#lookup-result'), 'lp:fixed = 5')
  await page.fill('#lookup-key', 'LP:x')
  await page.click('#lookup button')
  await page.waitForFunction(shown('lookup-result', "v.startsWith('invalid_type')"))

  fs.mkdirSync(ARTIFACTS, { recursive: true })
  await page.screenshot({ path: path.join(ARTIFACTS, 'live-page.png'), fullPage: true })
  t.ok(fs.statSync(path.join(ARTIFACTS, 'live-page.png')).size > 1000, 'screenshot written')
  // A 400 answer to the lookup is logged by Chromium as a failed resource load; that one is expected.
  t.same(problems.filter(p => !/status of 400/.test(p)), [], 'no console errors or warnings')
})
