// A ring member in its own process, for tests that kill one with SIGKILL (no LeaveGroup: the group
// notices only through the session timeout). argv[2] is MembershipOptions as JSON, without the
// logger. Writes one JSON line per event to stdout: {"event":"started"}, {"event":"ring","view":…},
// {"event":"lost","reason":…}; log lines go to stderr.
import { Membership, type MembershipLogger, type MembershipOptions } from '../../cluster/membership'

const line = (level: string) => (obj: object, msg: string): void => { process.stderr.write(JSON.stringify({ level, ...obj, msg }) + '\n') }
const logger: MembershipLogger = { info: line('info'), warn: line('warn'), error: line('error'), debug: () => {} }

async function main (): Promise<void> {
  const opts = JSON.parse(process.argv[2]) as Omit<MembershipOptions, 'logger'>
  const m = await Membership.start({ ...opts, logger })
  m.on('ring', (view) => { process.stdout.write(JSON.stringify({ event: 'ring', view }) + '\n') })
  m.on('lost', (reason) => { process.stdout.write(JSON.stringify({ event: 'lost', reason }) + '\n') })
  process.stdout.write(JSON.stringify({ event: 'started' }) + '\n')
  process.once('SIGTERM', () => { void m.stop().then(() => process.exit(0)) })
}

main().catch((err: Error) => {
  process.stderr.write(`membership member failed: ${err.stack ?? err.message}\n`)
  process.exit(1)
})
