// `npm run test:pack`: installs quicwire as a user would, with no Rust on PATH. Packs the
// main package and this platform's binary package, installs both tarballs into a fresh
// project outside the repository, and runs a real client/server exchange there: on the
// native addon, on the wasm engine, and through the fallback when the binary is missing.
// Needs `npm run build` first (dist/, pkg/ and the .node file).

import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function triple() {
  const { platform, arch } = process;
  if (platform === 'linux') {
    const musl = readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
    return `linux-${arch}-${musl ? 'musl' : 'gnu'}`;
  }
  return platform === 'win32' ? `win32-${arch}-msvc` : `${platform}-${arch}`;
}

function run(cmd, args, opts = {}) {
  // Windows runs npm.cmd through a shell only.
  const shell = process.platform === 'win32';
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], shell, ...opts });
}

/**
 * A PATH on which Rust is unusable: directories holding only Rust tools are dropped, and
 * `cargo`/`rustc` shims that fail (and leave a mark) come first, to shadow the ones that share
 * a directory with node (Debian puts both in /usr/bin).
 */
function pathWithoutRust(shims) {
  const has = (dir, f) => existsSync(join(dir, f)) || existsSync(join(dir, `${f}.exe`));
  const kept = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((d) => d && !((has(d, 'cargo') || has(d, 'rustc')) && !has(d, 'node')));
  mkdirSync(shims);
  for (const tool of ['cargo', 'rustc', 'rustup']) {
    const marker = join(shims, 'rust-was-called');
    writeFileSync(
      join(shims, tool),
      `#!/bin/sh\necho "${tool} $*" >> '${marker}'\necho '${tool}: not available in test:pack' >&2\nexit 127\n`,
      { mode: 0o755 },
    );
  }
  return [shims, ...kept].join(delimiter);
}

const target = triple();
const binary = `quicwire.${target}.node`;
const platformDir = join(root, 'npm', target);
for (const need of [
  'dist/index.js',
  'dist/browser/quicwire.js',
  'pkg/quicwire_wasm_bg.wasm',
  `crates/quicwire-node/${binary}`,
]) {
  if (!existsSync(join(root, need))) throw new Error(`${need} is missing: run \`npm run build\` first`);
}

const work = mkdtempSync(join(tmpdir(), 'quicwire-pack-'));
try {
  // The platform package gets the binary napi-rs built, as the release workflow does.
  copyFileSync(join(root, 'crates/quicwire-node', binary), join(platformDir, binary));
  const packed = (dir) => {
    const [info] = JSON.parse(run(npm, ['pack', '--json', '--pack-destination', work], { cwd: dir }));
    console.log(`packed ${info.filename}: ${info.entryCount} files, ${(info.size / 1024).toFixed(0)} KiB`);
    return join(work, info.filename);
  };
  const main = packed(root);
  const native = packed(platformDir);
  rmSync(join(platformDir, binary));

  const app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  copyFileSync(join(root, 'scripts/pack-check.mjs'), join(app, 'check.mjs'));
  const shims = join(work, 'no-rust');
  const env = { ...process.env, PATH: pathWithoutRust(shims) };
  delete env.QUICWIRE_BACKEND;
  run(npm, ['install', '--no-audit', '--no-fund', main, native], { cwd: app, env });

  const check = (label, extra, expected) => {
    const out = run('node', ['check.mjs'], { cwd: app, env: { ...env, ...extra } });
    const result = JSON.parse(out.trim().split('\n').pop());
    if (result.backend !== expected || result.delivered !== 100 || result.reply?.sum !== 3) {
      throw new Error(`${label}: unexpected result ${out}`);
    }
    console.log(
      `ok ${label}: ${result.backend}, ${result.delivered} messages, reply ${JSON.stringify(result.reply)}`,
    );
  };
  check('native from the platform package', {}, 'native');
  check('wasm (QUICWIRE_BACKEND=wasm)', { QUICWIRE_BACKEND: 'wasm' }, 'wasm');

  // Without the platform package: initWasm() falls back to wasm, and without it the error
  // names every place the loader looked.
  const installed = join(app, 'node_modules', `quicwire-${target}`);
  renameSync(installed, `${installed}.away`);
  check('wasm fallback with no native binary', {}, 'wasm');
  const out = run('node', ['check.mjs', '--no-init'], { cwd: app, env });
  const error = JSON.parse(out.trim().split('\n').pop()).error;
  if (
    !/^ERR_BACKEND_UNAVAILABLE/.test(error) ||
    !error.includes(`quicwire-${target}`) ||
    !error.includes('initWasm')
  ) {
    throw new Error(`the loader error does not list what it tried: ${error}`);
  }
  console.log(`ok the missing binary is reported:\n${error}`);
  renameSync(`${installed}.away`, installed);

  const help = run(
    join(app, 'node_modules/.bin', process.platform === 'win32' ? 'quicwire.cmd' : 'quicwire'),
    ['--help'],
    { cwd: app, env },
  );
  if (!help.includes('quicwire serve')) throw new Error(`the installed CLI's --help is wrong:\n${help}`);
  console.log('ok the installed `quicwire` command runs');
  if (existsSync(join(shims, 'rust-was-called'))) {
    throw new Error(`the install called Rust: ${readFileSync(join(shims, 'rust-was-called'), 'utf8')}`);
  }
  console.log('ok nothing called cargo or rustc');
} finally {
  rmSync(join(platformDir, binary), { force: true });
  rmSync(work, { recursive: true, force: true });
}
