/**
 * Row operations on a model's KV cache (src/model/transformer.ts KVCache): selecting rows along
 * the batch dimension. Group sharing uses it to expand a prefilled prompt to its G completions
 * (rows [0,0,…,1,1,…]); compaction uses it to drop finished rows. Every layer buffer (MLA latent +
 * rotary key, or K/V) is index-selected along dim 0 into a new kept tensor.
 *
 * It knows the cache's layout; not sampling, stopping or the model's forward.
 */
import { type Tensor, tensor } from '../core/index.ts';
import type { LayerCache } from '../model/attention.ts';
import { type KVCache, disposeCache } from '../model/transformer.ts';

const FIELDS = ['latent', 'kpe', 'k', 'v'] as const;

/** A new cache holding rows `index` (int64 (B')) of `cache`; `cache` itself is left as it is. */
export function selectCacheRows(cache: KVCache, index: Tensor): KVCache {
  const B = index.shape[0];
  const layers = cache.layers.map((l) => {
    const out: LayerCache = {};
    for (const f of FIELDS) {
      const t = l[f];
      if (t) out[f] = t.indexSelect(0, index).keep(); // (B', maxLen, …)
    }
    return out;
  });
  return { layers, batch: B, maxLen: cache.maxLen, mla: cache.mla };
}

/** Replaces `cache` by its rows `index`, disposing the old buffers. */
export function takeCacheRows(cache: KVCache, index: Tensor): KVCache {
  const next = selectCacheRows(cache, index);
  disposeCache(cache);
  return next;
}

/** int64 (n·g) index [0 ×g, 1 ×g, …, n−1 ×g] on `like`'s device (row b·g + j comes from row b). */
export function repeatIndex(n: number, g: number, like: Tensor): Tensor {
  const idx = new Int32Array(n * g);
  for (let i = 0; i < n * g; i++) idx[i] = Math.floor(i / g);
  return tensor(idx, { dtype: 'int64', device: like.device });
}
