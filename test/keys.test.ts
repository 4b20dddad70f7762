// The partition function is a contract with every node and client: fixed test vectors.
import t from 'tap'
import { fnv1a32, isValidId, isValidType, partitionOf, splitKey } from '../src/core/keys'

t.test('FNV-1a 32 test vectors', async (t) => {
  const vectors: Array<[string, number]> = [
    ['', 0x811c9dc5], ['a', 0xe40c292c], ['foobar', 0xbf9cf968], // from the FNV reference
    ['post:1', 3481246018], ['video:9', 1731761985], ['post:123', 3495259353], ['like:user-42', 3917725988]
  ]
  for (const [s, h] of vectors) t.equal(fnv1a32(s), h, JSON.stringify(s))
})

t.test('partition = fnv1a32(key) mod P', async (t) => {
  const vectors: Array<[string, number, number]> = [
    ['post:1', 64, 2], ['video:9', 64, 1], ['post:123', 64, 25], ['like:user-42', 64, 36], ['a:b:c', 64, 23], ['post:1', 7, 3481246018 % 7]
  ]
  for (const [k, P, p] of vectors) t.equal(partitionOf(k, P), p, `${k} mod ${P}`)
})

t.test('key validation', async (t) => {
  const types: Array<[string, boolean]> = [['post', true], ['a-b_9', true], ['a'.repeat(32), true], ['', false], ['a'.repeat(33), false], ['Post', false], ['po:st', false], ['pöst', false]]
  for (const [s, ok] of types) t.equal(isValidType(s), ok, `type ${JSON.stringify(s)}`)
  const ids: Array<[string, boolean]> = [['123', true], ['Az09_.:-', true], ['i'.repeat(128), true], ['', false], ['i'.repeat(129), false], ['a b', false], ['a/b', false], ['a%20', false], ['é', false]]
  for (const [s, ok] of ids) t.equal(isValidId(s), ok, `id ${JSON.stringify(s)}`)
  t.same(splitKey('post:a:b'), { type: 'post', id: 'a:b' }, 'the id may hold colons: split at the first')
  t.equal(splitKey('nocolon'), null)
  t.equal(splitKey(':x'), null)
  t.equal(splitKey('Post:x'), null)
})
