#!/usr/bin/env node
// Builds the libtorch addon (native/) with node-gyp. Finds libtorch in this order:
//   TINYSEEK_LIBTORCH (or LIBTORCH): a libtorch directory with include/ and lib/ (e.g. a CUDA build)
//   Debian's libtorch-dev (/usr/include/ATen, /usr/lib/<multiarch>/libtorch.so)
// When neither is there it fails with one line that says what to install or set.
// It skips the build when an addon built for the same libtorch is already there (use --force).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');
const force = process.argv.includes('--force');

function fail(line) {
  console.error(`tinyseek: ${line}`);
  process.exit(1);
}

function findLibtorch() {
  const custom = process.env.TINYSEEK_LIBTORCH || process.env.LIBTORCH;
  if (custom) {
    const dir = resolve(custom);
    const lib = join(dir, 'lib');
    if (!existsSync(join(dir, 'include', 'ATen', 'ATen.h')) || !existsSync(join(lib, 'libtorch.so'))) {
      fail(
        `TINYSEEK_LIBTORCH=${custom} is not a libtorch directory (need include/ATen/ATen.h and lib/libtorch.so); point it at an unpacked libtorch or unset it to use Debian's libtorch-dev`,
      );
    }
    let abi = '1';
    const cfg = join(dir, 'share', 'cmake', 'Torch', 'TorchConfig.cmake');
    if (existsSync(cfg)) {
      const m = /_GLIBCXX_USE_CXX11_ABI=(\d)/.exec(readFileSync(cfg, 'utf8'));
      if (m) abi = m[1];
    }
    const cuda = existsSync(join(lib, 'libtorch_cuda.so'));
    return {
      kind: cuda ? 'custom (CUDA)' : 'custom',
      includes: [join(dir, 'include'), join(dir, 'include', 'torch', 'csrc', 'api', 'include')],
      lib,
      abi,
      cuda,
    };
  }
  const arch = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu', ppc64: 'powerpc64le-linux-gnu', s390x: 's390x-linux-gnu' }[process.arch];
  const libDirs = [arch && `/usr/lib/${arch}`, '/usr/lib', '/usr/lib64'].filter(Boolean);
  const lib = libDirs.find((d) => existsSync(join(d, 'libtorch.so')) && existsSync(join(d, 'libtorch_cpu.so')));
  if (!existsSync('/usr/include/ATen/ATen.h') || !lib) {
    fail(
      'libtorch not found: install it with `apt-get install -y libtorch-dev libopenblas0-pthread` (Debian 12+), or set TINYSEEK_LIBTORCH=/path/to/libtorch (a directory with include/ and lib/, e.g. a CUDA build)',
    );
  }
  return { kind: 'debian', includes: ['/usr/include', '/usr/include/torch/csrc/api/include'], lib, abi: '1', cuda: false };
}

const torch = findLibtorch();
// c10d's Gloo process group needs Gloo's headers (Debian: libgloo-dev); NCCL's needs nccl.h and a
// CUDA libtorch.
const headerDirs = [...torch.includes, '/usr/include', process.env.CUDA_HOME && join(process.env.CUDA_HOME, 'include'), '/usr/local/cuda/include'].filter(
  Boolean,
);
if (!headerDirs.some((d) => existsSync(join(d, 'gloo', 'algorithm.h')))) {
  fail("Gloo's headers are missing (c10d's CPU process group needs them): install them with `apt-get install -y libgloo-dev`");
}
const defines = [];
const ncclDir = torch.cuda ? headerDirs.find((d) => existsSync(join(d, 'nccl.h'))) : undefined;
if (ncclDir) {
  defines.push('TINYSEEK_NCCL');
  if (!torch.includes.includes(ncclDir)) torch.includes.push(ncclDir);
} else if (torch.cuda) {
  console.log('tinyseek: nccl.h not found (set CUDA_HOME or install NCCL headers): the addon is built without the NCCL process group');
}
torch.defines = defines;
const libs = [`-L${torch.lib}`, `-Wl,-rpath,${torch.lib}`, '-ltorch', '-ltorch_cpu', '-lc10'];
if (torch.cuda) libs.push('-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed');
libs.push('-ldl');

const stampFile = join(nativeDir, 'build', 'tinyseek-build.json');
const addonFile = join(nativeDir, 'build', 'Release', 'tinyseek.node');
const stamp = JSON.stringify({ ...torch, node: process.versions.modules });
if (!force && existsSync(addonFile) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
  console.log(`tinyseek: native addon up to date (libtorch: ${torch.kind}, ${torch.lib})`);
  process.exit(0);
}

console.log(`tinyseek: building the native addon against libtorch (${torch.kind}) in ${torch.lib}`);
const gypBin = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
if (!existsSync(gypBin)) fail('node-gyp is missing: run `npm ci` first');
const jobs = String(Math.max(1, (await import('node:os')).availableParallelism()));
// Build against the headers of the running Node when it ships them (no download needed).
const gypArgs = [gypBin, 'rebuild', '--release', '-j', jobs, '--loglevel=warn'];
const localNodeDir = resolve(dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(join(localNodeDir, 'include', 'node', 'node_api.h'))) {
  gypArgs.push(`--nodedir=${localNodeDir}`);
}
const res = spawnSync(process.execPath, gypArgs, {
  cwd: nativeDir,
  stdio: 'inherit',
  env: {
    ...process.env,
    TINYSEEK_TORCH_INCLUDES: torch.includes.join(' '),
    TINYSEEK_TORCH_LIBS: libs.join(' '),
    TINYSEEK_TORCH_CXX11_ABI: torch.abi,
    TINYSEEK_TORCH_DEFINES: defines.join(' '),
  },
});
if (res.status !== 0) fail('building the native addon failed (see the compiler output above)');
writeFileSync(stampFile, stamp);
console.log(`tinyseek: native addon built: ${addonFile}`);
