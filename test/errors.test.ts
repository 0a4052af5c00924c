/**
 * Failures: each class of error is thrown as the right type, names the operator and carries
 * libtorch's own message, and leaves the process (and the engine) working. Also tensor lifetime:
 * tidy() scopes, keep(), dispose().
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DisposedTensorError,
  Generator,
  type Tensor,
  TorchError,
  arange,
  backward,
  callOp,
  cat,
  crossEntropy,
  cudaAvailable,
  dispose,
  dropout,
  embedding,
  fromTypedArray,
  memoryStats,
  oneHot,
  ones,
  randint,
  scatter,
  scopeDepth,
  stack,
  tensor,
  tidy,
  where,
  zeros,
  type DType,
  type Device,
} from '../src/core/index.ts';

// ---- helpers --------------------------------------------------------------------------------------

/** The engine still works: a simple op gives the right answer. */
function assertAlive(): void {
  assert.deepEqual(
    tensor([1, 2])
      .add(tensor([10, 20]))
      .toArray(),
    [11, 22],
    'a simple op works after the error',
  );
  assert.equal(scopeDepth(), 0, 'no tidy() scope left open');
}

/**
 * fn throws a TorchError for operator `op` whose message is "<op>: <libtorch's message>" with
 * libtorch's message matching `detail`.
 */
function assertTorchError(fn: () => unknown, op: string, detail: RegExp): TorchError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof TorchError, `expected a TorchError, got ${String(caught)}`);
  assert.equal(caught.name, 'TorchError');
  assert.equal(caught.op, op, 'the error names the operator');
  assert.ok(caught.message.startsWith(`${op}: `), `message "${caught.message}" starts with the operator`);
  assert.match(caught.detail, detail, "the error carries libtorch's message");
  assert.equal(caught.message, `${op}: ${caught.detail}`);
  assertAlive();
  return caught;
}

function assertThrowsType(fn: () => unknown, type: typeof TypeError | typeof RangeError, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof type, `expected a ${type.name}, got ${String(e)}`);
    assert.ok(!(e instanceof TorchError));
    assert.match((e as Error).message, message);
    return true;
  });
  assertAlive();
}

function assertDisposed(fn: () => unknown, what: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DisposedTensorError, `expected a DisposedTensorError, got ${String(e)}`);
    assert.equal(e.name, 'DisposedTensorError');
    assert.ok(e.message.startsWith(what), `message "${e.message}" starts with "${what}"`);
    assert.match(e.message, /the tensor was disposed/);
    return true;
  });
  assertAlive();
}

const i64 = (data: number[]): Tensor => tensor(data, { dtype: 'int64' });
const live = (): number => memoryStats().liveTensors;

// ---- libtorch errors ------------------------------------------------------------------------------

describe('bad shapes (TorchError)', () => {
  it('matmul and mm with mismatched inner dimensions', () => {
    assertTorchError(() => ones([2, 3]).matmul(ones([4, 5])), 'aten::matmul', /shapes cannot be multiplied \(2x3 and 4x5\)/);
    assertTorchError(() => ones([2, 3]).mm(ones([2, 3])), 'aten::mm', /shapes cannot be multiplied \(2x3 and 2x3\)/);
    assertTorchError(() => ones([2, 3]).bmm(ones([3, 2])), 'aten::bmm', /3D tensor/);
  });

  it('reshape and view to the wrong number of elements', () => {
    assertTorchError(() => ones([2, 3]).reshape([4]), 'aten::reshape', /shape '\[4\]' is invalid for input of size 6/);
    assertTorchError(() => ones([2, 3]).view([5, -1]), 'aten::view', /shape '\[5, -1\]' is invalid for input of size 6/);
    assertTorchError(() => ones([2, 3]).view([-1, -1]), 'aten::view', /only one dimension can be inferred/);
  });

  it('view of a non-contiguous tensor', () => {
    assertTorchError(() => ones([2, 3]).transpose(0, 1).view([6]), 'aten::view', /view size is not compatible with input tensor's size and stride.*reshape/);
    assert.deepEqual(ones([2, 3]).transpose(0, 1).reshape([6]).shape, [6], 'reshape copies instead');
  });

  it('cat and stack of mismatched shapes', () => {
    assertTorchError(() => cat([ones([2, 3]), ones([4, 5])], 0), 'aten::cat', /Sizes of tensors must match except in dimension 0/);
    assertTorchError(() => stack([ones([2]), ones([3])]), 'aten::stack', /stack expects each tensor to be equal size/);
  });

  it('broadcasting and expand mismatches', () => {
    assertTorchError(() => ones([2, 3]).add(ones([4])), 'aten::add.Tensor', /size of tensor a \(3\) must match the size of tensor b \(4\)/);
    assertTorchError(() => where(ones([4], { dtype: 'bool' }), ones([2, 3]), ones([2, 3])), 'aten::where.self', /must match the size/);
    assertTorchError(() => ones([2, 3]).expand([4, 3]), 'aten::expand', /expanded size of the tensor \(4\) must match the existing size \(2\)/);
    assertTorchError(() => zeros([2]).copy_(ones([3])), 'aten::copy_', /must match the size/);
  });
});

describe('wrong dtype (TorchError)', () => {
  it('index_select with a float index', () => {
    assertTorchError(() => ones([2, 3]).indexSelect(0, tensor([0])), 'aten::index_select', /Expected dtype int32 or int64 for index/);
  });

  it('crossEntropy with float targets', () => {
    assertTorchError(() => crossEntropy(ones([2, 3]), tensor([0, 1])), 'aten::cross_entropy_loss', /expected scalar type Long but found Float/);
  });

  it('requiresGrad on an integer tensor', () => {
    assertTorchError(() => arange(3).requiresGrad_(), 'requiresGrad', /Only Tensors of floating point and complex dtype can require gradients/);
    assertTorchError(() => zeros([2], { dtype: 'int64', requiresGrad: true }), 'requiresGrad', /floating point/);
  });

  it('mixed float32/float64 matmul and integer softmax', () => {
    assertTorchError(() => ones([2, 3]).matmul(ones([3, 2], { dtype: 'float64' })), 'aten::matmul', /expected scalar type Float but found Double/);
    assertTorchError(() => i64([1, 2]).softmax(0), 'aten::softmax.int', /not implemented for 'Long'/);
  });
});

describe('out-of-range dimensions and indices (TorchError)', () => {
  it('dimensions', () => {
    assertTorchError(() => ones([2, 3]).sum(5), 'aten::sum.dim_IntList', /Dimension out of range \(expected to be in range of \[-2, 1\], but got 5\)/);
    assertTorchError(() => ones([2, 3]).softmax(-3), 'aten::softmax.int', /Dimension out of range/);
    assertTorchError(() => ones([2, 3]).transpose(0, 2), 'aten::transpose.int', /Dimension out of range/);
    assertTorchError(() => ones([2, 3]).permute([0, 0]), 'aten::permute', /duplicate dims/);
  });

  it('indices', () => {
    assertTorchError(() => ones([2, 3]).select(0, 7), 'aten::select.int', /index 7 out of range for tensor of size \[2, 3\] at dimension 0/);
    assertTorchError(() => ones([2, 3]).narrow(1, 2, 5), 'aten::narrow', /exceeds dimension size/);
    assertTorchError(() => ones([2, 3]).indexSelect(0, i64([5])), 'aten::index_select', /index out of range/);
    assertTorchError(() => ones([2, 3]).gather(1, tensor([[9]], { dtype: 'int64' })), 'aten::gather', /index 9 is out of bounds for dimension 1 with size 3/);
    assertTorchError(() => scatter(zeros([2, 3]), 1, tensor([[5]], { dtype: 'int64' }), ones([1, 1])), 'aten::scatter.src', /index 5 is out of bounds/);
    assertTorchError(() => ones([2, 3]).index([i64([5])]), 'aten::index.Tensor', /index 5 is out of bounds for dimension 0 with size 2/);
    assertTorchError(() => embedding(ones([2, 3]), i64([7])), 'aten::embedding', /index out of range/);
    assertTorchError(() => crossEntropy(ones([2, 3]), i64([0, 7])), 'aten::cross_entropy_loss', /Target 7 is out of bounds/);
    assertTorchError(() => oneHot(i64([3]), 2), 'aten::one_hot', /Class values must be smaller than num_classes/);
    assertTorchError(() => ones([2, 3]).topk(5), 'aten::topk', /k out of range/);
  });

  it('size() checks its dimension in TypeScript (RangeError)', () => {
    assertThrowsType(() => ones([2, 3]).size(4), RangeError, /dimension 4 out of range for a 2-d tensor/);
  });
});

describe('invalid values (TorchError)', () => {
  it('item() of a tensor with several elements', () => {
    assertTorchError(() => ones([2]).item(), 'aten::item', /a Tensor with 2 elements cannot be converted to Scalar/);
  });

  it('sampling and counting', () => {
    assertTorchError(() => tensor([-1, 2]).multinomial(1), 'aten::multinomial', /element < 0/);
    assertTorchError(
      () => tensor([1, 2]).multinomial(3, false),
      'aten::multinomial',
      /cannot sample n_sample > prob_dist.size\(-1\) samples without replacement/,
    );
    assertTorchError(() => i64([-1, 2]).bincount(), 'aten::bincount', /non-negative/);
  });

  it('integer division by zero', () => {
    assertTorchError(() => i64([1]).div(0, 'floor'), 'aten::div.Scalar_mode', /ZeroDivisionError/);
    assertTorchError(() => i64([1]).remainder(0), 'aten::remainder.Scalar', /ZeroDivisionError/);
  });

  it('a negative seed', () => {
    assertTorchError(() => new Generator(-1), 'Generator', /a seed must be a non-negative integer/);
  });

  it('a CUDA device without CUDA', { skip: cudaAvailable() ? 'CUDA is available' : false }, () => {
    assertTorchError(() => ones([1], { device: 'cuda' }), 'aten::ones', /CUDA is not available in this libtorch build/);
    assertTorchError(() => ones([1]).to('cuda:0'), 'aten::to.dtype_layout', /CUDA is not available/);
  });
});

// ---- generic calls --------------------------------------------------------------------------------

describe('callOp: operator names and operands', () => {
  it('an unknown operator name or overload', () => {
    assertTorchError(() => callOp('aten::no_such_op', '', [ones([1])]), 'aten::no_such_op', /unknown operator aten::no_such_op \(check the name and overload/);
    assertTorchError(() => callOp('aten::add', 'NoSuchOverload', [ones([1])]), 'aten::add.NoSuchOverload', /unknown operator aten::add\.NoSuchOverload/);
    // A bare name gets the aten:: namespace.
    assertTorchError(() => callOp('no_such_op_either', '', []), 'aten::no_such_op_either', /unknown operator aten::no_such_op_either/);
  });

  it('a number where the schema expects a Tensor: the message quotes the schema', () => {
    const e = assertTorchError(() => callOp('aten::add', 'Tensor', [ones([2]), 3]), 'aten::add.Tensor', /argument 1 'other' expects Tensor, got int/);
    assert.ok(e.message.includes('[schema: aten::add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor]'), e.message);
  });

  it('other wrong operand kinds', () => {
    assertTorchError(
      () => callOp('aten::sum', 'dim_IntList', [ones([2, 3]), 'x']),
      'aten::sum.dim_IntList',
      /argument 1 'dim' expects int\[\], got str \[schema: aten::sum\.dim_IntList\(/,
    );
    assertTorchError(
      () => callOp('aten::reshape', '', [ones([2, 3]), ones([2])]),
      'aten::reshape',
      /argument 1 'shape' expects int\[\], got Tensor \[schema: /,
    );
    assertTorchError(() => callOp('aten::select', 'int', [ones([2, 3]), { float: 0.5 }, 0]), 'aten::select.int', /argument 1 'dim' expects int, got float/);
    assertTorchError(() => callOp('aten::neg', '', [[ones([2])]]), 'aten::neg', /argument 0 'self' expects Tensor, got Tensor\[\]/);
  });

  it('too many operands', () => {
    assertTorchError(
      () => callOp('aten::neg', '', [ones([2]), ones([2])]),
      'aten::neg',
      /too many arguments: the schema takes 1 \[schema: aten::neg\(Tensor self\) -> Tensor\]/,
    );
  });

  it('a missing operand without a default', () => {
    assertTorchError(() => callOp('aten::mul', 'Tensor', [ones([2])]), 'aten::mul.Tensor', /missing argument 1 'other' \(Tensor\)/);
    assertTorchError(() => callOp('aten::mul', 'Tensor', [ones([2]), undefined]), 'aten::mul.Tensor', /missing argument 1 'other'/);
  });
});

// ---- argument checks in TypeScript --------------------------------------------------------------

describe('argument checks (TypeError / RangeError)', () => {
  it('shapes', () => {
    assertThrowsType(() => zeros([2, -1]), RangeError, /shape \[2, -1\] must hold non-negative integers/);
    assertThrowsType(() => ones([1.5]), RangeError, /non-negative integers/);
    assertThrowsType(() => fromTypedArray(new Float32Array(3), [2, 2]), RangeError, /shape \[2, 2\] holds 4 elements but the data has 3/);
    assertThrowsType(() => tensor([[1, 2], [3]]), TypeError, /ragged/);
    assertThrowsType(() => ones([2, 3]).reshape(new Array<number>(70000).fill(1)), RangeError, /operands do not fit the operand buffer/);
  });

  it('integers, dtypes and devices', () => {
    assertThrowsType(() => ones([2, 3]).select(0, 1.5), TypeError, /expected an integer, got 1\.5/);
    assertThrowsType(() => ones([2, 3]).permute([0, 0.5]), TypeError, /expected integers/);
    assertThrowsType(() => zeros([1], { dtype: 'float8' as DType }), TypeError, /unknown dtype 'float8'/);
    assertThrowsType(() => ones([1]).to('tpu' as DType), TypeError, /unknown dtype 'tpu'/);
    assertThrowsType(() => ones([1]).to({ device: 'tpu' as Device }), TypeError, /unknown device 'tpu'/);
  });

  it('option values', () => {
    assertThrowsType(() => randint(5, 5, [2]), RangeError, /high \(5\) must be greater than low \(5\)/);
    assertThrowsType(() => arange(0, 5, 0), RangeError, /step must be nonzero/);
    assertThrowsType(() => ones([2]).clamp(), TypeError, /give at least one of min and max/);
    assertThrowsType(() => ones([2]).clamp_(), TypeError, /give at least one of min and max/);
    assertThrowsType(() => dropout(ones([2]), 1.5, true), RangeError, /dropout probability must be in \[0, 1\]/);
    assertThrowsType(() => crossEntropy(ones([2, 3]), i64([0, 1]), { reduction: 'avg' as 'mean' }), TypeError, /reduction must be none, mean or sum/);
    assertThrowsType(() => scatter(zeros([3]), 0, i64([0]), 1, 'sum'), TypeError, /reduce needs a tensor source/);
    assertThrowsType(() => backward([]), TypeError, /no outputs given/);
    assertThrowsType(() => backward([ones([1])], []), TypeError, /1 outputs but 0 gradients/);
  });
});

// ---- disposed tensors ---------------------------------------------------------------------------

describe('disposed tensors (DisposedTensorError)', () => {
  it('using an explicitly disposed tensor names the operator', () => {
    const d = ones([2]);
    d.dispose();
    assert.equal(d.isDisposed, true);
    assertDisposed(() => d.add(1), 'aten::add.Scalar');
    assertDisposed(() => ones([2]).add(d), 'aten::add.Tensor (tensor operand 1)');
    assertDisposed(() => cat([ones([2]), d]), 'aten::cat');
    assertDisposed(() => ones([2]).index([d]), 'aten::index.Tensor');
    assertDisposed(() => callOp('aten::neg', '', [d]), 'aten::neg');
    assertDisposed(() => d.shape, 'meta');
    assertDisposed(() => d.toArray(), 'toTypedArray');
    assertDisposed(() => d.item(), 'aten::item');
    assertDisposed(() => d.requiresGrad_(), 'requiresGrad_');
    assert.equal(String(d), 'Tensor(<disposed>)');
  });

  it('backward with a disposed output or gradient', () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const y = x.mul(2).sum();
    y.dispose();
    assertDisposed(() => y.backward(), 'backward');
    assertDisposed(() => backward([y]), 'backward (output 0)');
    const g = tensor(1);
    g.dispose();
    // A disposed gradient must not silently become the implicit gradient of ones.
    assertDisposed(() => backward([x.mul(2).sum()], [g]), 'backward (gradient 0)');
    assertDisposed(() => x.mul(2).sum().backward(g), 'backward');
    assert.equal(x.grad, null, 'no gradient was accumulated');
  });

  it('using a tensor after its tidy() scope ended', () => {
    let escaped: Tensor | null = null;
    const r = tidy(() => {
      escaped = ones([2]);
      return escaped.mul(2);
    });
    assert.deepEqual(r.toArray(), [2, 2]);
    const e = escaped as unknown as Tensor;
    assert.equal(e.isDisposed, true);
    assertDisposed(() => e.mul(2), 'aten::mul.Scalar');
    assertDisposed(() => e.dtype, 'meta');
  });

  it('a tensor kept with keep() survives its scope', () => {
    let kept: Tensor | null = null;
    tidy(() => {
      kept = ones([2]).mul(3).keep();
      ones([5]);
    });
    const k = kept as unknown as Tensor;
    assert.equal(k.isDisposed, false);
    assert.equal(k.isKept, true);
    assert.deepEqual(k.add(1).toArray(), [4, 4]);
    k.dispose();
    assert.equal(k.isDisposed, true);
    assertAlive();
  });
});

describe('tidy() misuse', () => {
  it('tidy() given an async function throws a TypeError and frees the scope', async () => {
    const before = live();
    let inside: Tensor | null = null;
    assert.throws(
      () =>
        tidy((async () => {
          inside = ones([2]);
          await null;
          return (inside as Tensor).add(1); // runs after the scope ended: rejects, must not crash
        }) as unknown as () => Tensor),
      { name: 'TypeError', message: /tidy\(\) needs a synchronous function/ },
    );
    assert.equal((inside as unknown as Tensor).isDisposed, true);
    assert.equal(live(), before, 'tensors created before the await were freed');
    assert.equal(scopeDepth(), 0);
    await new Promise((r) => setTimeout(r, 20)); // let the abandoned promise run and reject
    assertAlive();
  });

  it('an error thrown inside tidy() frees the scope and propagates', () => {
    const before = live();
    assert.throws(
      () =>
        tidy(() => {
          ones([3]).add(1);
          return ones([2, 3]).matmul(ones([2, 3]));
        }),
      TorchError,
    );
    assert.equal(live(), before);
    assertAlive();
  });
});

// ---- lifetime -------------------------------------------------------------------------------------

describe('lifetime', () => {
  it('tidy() frees intermediates; the returned tensor survives', () => {
    const start = live();
    let a: Tensor | null = null;
    const r = tidy(() => {
      a = ones([4, 4]);
      const b = a.add(1);
      const c = b.matmul(b);
      return c.sum();
    });
    assert.equal(live(), start + 1, 'only the returned tensor is live');
    assert.equal((a as unknown as Tensor).isDisposed, true);
    assert.equal(r.isDisposed, false);
    assert.equal(r.item(), 16 * 16); // each entry of the product is 2·2·4 = 16; 16 entries
    r.dispose();
    assert.equal(live(), start);
  });

  it('returned tensors move to the enclosing scope; nested scopes', () => {
    const start = live();
    let inner: Tensor | null = null;
    let outerLocal: Tensor | null = null;
    const kept = tidy(() => {
      inner = tidy(() => {
        ones([2]);
        return ones([2]).mul(5);
      });
      assert.equal(live(), start + 1, 'the inner scope freed its intermediates');
      assert.equal(scopeDepth(), 1);
      outerLocal = inner.add(1);
      return outerLocal.mul(2);
    });
    assert.equal((inner as unknown as Tensor).isDisposed, true, 'the inner result died with the outer scope');
    assert.equal((outerLocal as unknown as Tensor).isDisposed, true);
    assert.deepEqual(kept.toArray(), [12, 12]);
    assert.equal(live(), start + 1);
    kept.dispose();
    assert.equal(live(), start);
  });

  it('tensors inside returned arrays, objects and Maps survive', () => {
    const start = live();
    const r = tidy(() => {
      ones([1]);
      return { list: [ones([1]), ones([2])], nested: { t: zeros([3]) }, map: new Map([['m', ones([4])]]), n: 3 };
    });
    assert.equal(live(), start + 4);
    assert.deepEqual(r.list[1].toArray(), [1, 1]);
    assert.deepEqual(r.nested.t.toArray(), [0, 0, 0]);
    assert.deepEqual(r.map.get('m')?.toArray(), [1, 1, 1, 1]);
    dispose(r);
    assert.equal(live(), start);
    assert.equal(r.list[0].isDisposed, true);
  });

  it('an in-place result on an outer tensor is not freed by the scope', () => {
    const x = ones([2]);
    const same = tidy(() => x.add_(1));
    assert.equal(same, x);
    assert.equal(x.isDisposed, false);
    tidy(() => {
      x.to('float32'); // returns x itself
      x.mul_(2);
    });
    assert.deepEqual(x.toArray(), [4, 4]);
  });

  it('dispose() twice is safe, also through the dispose() helper', () => {
    const start = live();
    const t = ones([3]);
    const v = t.view([3, 1]);
    assert.equal(live(), start + 2);
    t.dispose();
    t.dispose();
    dispose(t, [t]);
    assert.equal(live(), start + 1);
    assert.deepEqual(v.toArray(), [1, 1, 1], 'a view keeps its storage alive');
    v.dispose();
    assert.equal(live(), start);
    // A tensor disposed inside a scope is skipped at the scope's end.
    tidy(() => {
      const u = ones([2]);
      u.dispose();
    });
    assert.equal(live(), start);
    assertAlive();
  });

  it('native memory goes back after a scope', () => {
    const bytes = memoryStats().liveBytes;
    tidy(() => {
      const big = zeros([512, 512]); // 1 MiB
      assert.ok(memoryStats().liveBytes >= bytes + 512 * 512 * 4, 'the allocation is counted');
      big.add(1).sum();
    });
    assert.ok(memoryStats().liveBytes < bytes + 64 * 1024, 'freed at the end of the scope');
  });

  it('each read of .grad is a new handle; disposing it keeps the gradient', () => {
    const x = tensor([1, 2], { requiresGrad: true });
    x.mul(3).sum().backward();
    const g1 = x.grad!;
    const start = live();
    g1.dispose();
    assert.equal(live(), start - 1);
    assert.deepEqual(x.grad?.toArray(), [3, 3]);
  });
});
