// Constructor option checks shared by the feature structures. Each check names the option and
// what was expected, so a bad configuration fails at start with a message that says what to fix.
import { CounterdError } from '../../src/core/errors'

export type Options = Record<string, unknown>

/** The options object itself: undefined or a plain object whose keys are all known. */
export function checkOptions (options: unknown, known: readonly string[]): Options {
  if (options === undefined) return {}
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new CounterdError('invalid_option', 'options must be an object')
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new CounterdError('invalid_option', `options.${key} is not a known option (known: ${known.join(', ')})`)
    }
  }
  return options as Options
}

/** An integer option in [min, max]; `def` when absent. */
export function intOption (options: Options, name: string, def: number, min: number, max: number): number {
  const v = options[name]
  if (v === undefined) return def
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new CounterdError('invalid_option', `options.${name} must be an integer between ${min} and ${max}`)
  }
  return v
}

/** A finite number option with min < v <= max (or min <= v when minInclusive); `def` when absent. */
export function numberOption (options: Options, name: string, def: number, min: number, max: number, minInclusive = false): number {
  const v = options[name]
  if (v === undefined) return def
  if (typeof v !== 'number' || !Number.isFinite(v) || (minInclusive ? v < min : v <= min) || v > max) {
    throw new CounterdError('invalid_option', `options.${name} must be a number ${minInclusive ? '>=' : '>'} ${min} and <= ${max}`)
  }
  return v
}

/** A string option matching `re`; `def` when absent (undefined def = required). */
export function stringOption (options: Options, name: string, def: string | undefined, re: RegExp, expected: string): string {
  const v = options[name]
  if (v === undefined) {
    if (def !== undefined) return def
    throw new CounterdError('invalid_option', `options.${name} is required and must be ${expected}`)
  }
  if (typeof v !== 'string' || !re.test(v)) {
    throw new CounterdError('invalid_option', `options.${name} must be ${expected}`)
  }
  return v
}
