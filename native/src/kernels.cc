// Fused CPU kernels for the small operations of a decode step, registered in libtorch's dispatcher
// as tinyseek:: operators, so that the generic call reaches them by name like any aten:: operator.
// Each replaces a chain of 6–17 separate calls (an allocation and a dispatch each) with one pass:
//
//   tinyseek::rms_norm(x, weight, eps)            x · rsqrt(mean(x²) + eps) · weight, last dimension
//   tinyseek::rotary(x, cos, sin)                 rotation of interleaved pairs (x[2i], x[2i+1])
//   tinyseek::moe_select(scores, bias, groups, topk_groups, k)
//                                                 DeepSeek-V3's group-limited top-k expert choice
//
// They compute in float32 on CPU tensors and record no autograd graph: the JavaScript side calls
// them only where no gradient is wanted (inference) and keeps the composite form otherwise.
// moe_select returns integer indices, which carry no gradient in either form.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace {

void checkFloatCpu(const at::Tensor& t, const char* op, const char* what) {
  TORCH_CHECK(t.device().is_cpu(), "tinyseek::", op, ": ", what, " must be on the CPU, got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat, "tinyseek::", op, ": ", what, " must be float32, got ", t.scalar_type());
}

// x (…, D), weight (D) → (…, D). Sums of squares in double, the result in float32.
at::Tensor rmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  checkFloatCpu(x, "rms_norm", "x");
  checkFloatCpu(weight, "rms_norm", "weight");
  TORCH_CHECK(x.dim() >= 1, "tinyseek::rms_norm: x must have at least one dimension");
  const int64_t D = x.size(-1);
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == D, "tinyseek::rms_norm: weight must be (", D, "), got ", weight.sizes());
  const at::Tensor xc = x.contiguous();
  const at::Tensor wc = weight.contiguous();
  at::Tensor out = at::empty_like(xc, at::MemoryFormat::Contiguous);
  const int64_t rows = D == 0 ? 0 : xc.numel() / D;
  const float* px = xc.data_ptr<float>();
  const float* pw = wc.data_ptr<float>();
  float* po = out.data_ptr<float>();
  at::parallel_for(0, rows, std::max<int64_t>(1, 32768 / std::max<int64_t>(D, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* xr = px + r * D;
      float* orow = po + r * D;
      double ss = 0;
      for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(xr[i]) * xr[i];
      // the mean of squares as float32 holds it, as the composite form computes it: a sum past
      // float32's range is inf there too, and the row becomes 0 (or NaN) in both forms alike
      const float meanSq = static_cast<float>(ss / static_cast<double>(D));
      const float inv = 1.0f / std::sqrt(meanSq + static_cast<float>(eps));
      for (int64_t i = 0; i < D; ++i) orow[i] = (xr[i] * inv) * pw[i];
    }
  });
  return out;
}

// x (B, S, H, dim); cos, sin broadcastable to (B, S, 1, dim/2): (S, 1, dim/2) or (B, S, 1, dim/2).
at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  checkFloatCpu(x, "rotary", "x");
  checkFloatCpu(cos, "rotary", "cos");
  checkFloatCpu(sin, "rotary", "sin");
  TORCH_CHECK(x.dim() == 4, "tinyseek::rotary: x must be (B, S, H, dim), got ", x.sizes());
  const int64_t B = x.size(0), S = x.size(1), H = x.size(2), dim = x.size(3);
  TORCH_CHECK(dim % 2 == 0, "tinyseek::rotary: the rotary width must be even, got ", dim);
  const int64_t half = dim / 2;
  const at::Tensor c = cos.expand({B, S, 1, half}).contiguous();
  const at::Tensor s = sin.expand({B, S, 1, half}).contiguous();
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty({B, S, H, dim}, xc.options());
  const float* px = xc.data_ptr<float>();
  const float* pc = c.data_ptr<float>();
  const float* ps = s.data_ptr<float>();
  float* po = out.data_ptr<float>();
  at::parallel_for(0, B * S, std::max<int64_t>(1, 16384 / std::max<int64_t>(H * dim, 1)), [&](int64_t b, int64_t e) {
    for (int64_t bs = b; bs < e; ++bs) {
      const float* cr = pc + bs * half;
      const float* sr = ps + bs * half;
      for (int64_t h = 0; h < H; ++h) {
        const float* xr = px + (bs * H + h) * dim;
        float* orow = po + (bs * H + h) * dim;
        for (int64_t i = 0; i < half; ++i) {
          const float re = xr[2 * i], im = xr[2 * i + 1];
          orow[2 * i] = re * cr[i] - im * sr[i];
          orow[2 * i + 1] = re * sr[i] + im * cr[i];
        }
      }
    }
  });
  return out;
}

// Indices of the k largest of `v`, largest first; among equal values the lower index first.
void topIndices(const std::vector<float>& v, int64_t k, std::vector<int64_t>& out) {
  std::vector<int64_t> idx(v.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
  // NaN counts as the largest value, as torch.topk orders it
  const auto key = [&](int64_t i) { return std::isnan(v[i]) ? std::numeric_limits<float>::infinity() : v[i]; };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int64_t a, int64_t b) {
    const float x = key(a), y = key(b);
    return x > y || (x == y && a < b);
  });
  out.assign(idx.begin(), idx.begin() + k);
}

// scores (T, E) float32, bias (E) or none → (T, k) int64: selection scores s + b; with groups > 1,
// each group is scored by the sum of its top two (with a bias) or its max (without), the best
// topk_groups groups are kept and the top k experts chosen inside them.
at::Tensor moeSelect(const at::Tensor& scores, const c10::optional<at::Tensor>& bias, int64_t groups, int64_t topkGroups, int64_t k) {
  checkFloatCpu(scores, "moe_select", "scores");
  TORCH_CHECK(scores.dim() == 2, "tinyseek::moe_select: scores must be (T, E), got ", scores.sizes());
  const int64_t T = scores.size(0), E = scores.size(1);
  TORCH_CHECK(groups >= 1 && E % groups == 0, "tinyseek::moe_select: ", E, " experts do not split into ", groups, " groups");
  TORCH_CHECK(topkGroups >= 1 && topkGroups <= groups, "tinyseek::moe_select: topk_groups must be in 1..", groups, ", got ", topkGroups);
  const int64_t perGroup = E / groups;
  TORCH_CHECK(k >= 1 && k <= topkGroups * perGroup, "tinyseek::moe_select: k = ", k, " exceeds the ", topkGroups * perGroup, " experts of the kept groups");
  const bool hasBias = bias.has_value() && bias->defined();
  at::Tensor bc;
  if (hasBias) {
    checkFloatCpu(*bias, "moe_select", "bias");
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == E, "tinyseek::moe_select: bias must be (", E, "), got ", bias->sizes());
    bc = bias->contiguous();
  }
  TORCH_CHECK(!hasBias || groups == 1 || perGroup >= 2, "tinyseek::moe_select: scoring groups by their top two needs at least 2 experts per group");
  const at::Tensor sc = scores.contiguous();
  at::Tensor out = at::empty({T, k}, sc.options().dtype(at::kLong));
  const float* pscore = sc.data_ptr<float>();
  const float* pb = hasBias ? bc.data_ptr<float>() : nullptr;
  int64_t* po = out.data_ptr<int64_t>();
  std::vector<float> sel(E), groupScore(groups), inGroup(perGroup);
  std::vector<int64_t> keptGroups, chosen, topTwo;
  for (int64_t t = 0; t < T; ++t) {
    const float* row = pscore + t * E;
    for (int64_t e = 0; e < E; ++e) sel[e] = hasBias ? row[e] + pb[e] : row[e];
    if (groups > 1) {
      for (int64_t g = 0; g < groups; ++g) {
        for (int64_t j = 0; j < perGroup; ++j) inGroup[j] = sel[g * perGroup + j];
        if (hasBias) {
          topIndices(inGroup, 2, topTwo);
          groupScore[g] = inGroup[topTwo[0]] + inGroup[topTwo[1]];
        } else {
          groupScore[g] = *std::max_element(inGroup.begin(), inGroup.end());
        }
      }
      topIndices(groupScore, topkGroups, keptGroups);
      std::vector<bool> kept(groups, false);
      for (int64_t g : keptGroups) kept[g] = true;
      for (int64_t g = 0; g < groups; ++g) {
        if (kept[g]) continue;
        for (int64_t j = 0; j < perGroup; ++j) sel[g * perGroup + j] = -std::numeric_limits<float>::infinity();
      }
    }
    topIndices(sel, k, chosen);
    for (int64_t j = 0; j < k; ++j) po[t * k + j] = chosen[j];
  }
  return out;
}

}  // namespace

TORCH_LIBRARY(tinyseek, m) {
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor", &rmsNorm);
  m.def("rotary(Tensor x, Tensor cos, Tensor sin) -> Tensor", &rotary);
  m.def("moe_select(Tensor scores, Tensor? bias, int groups, int topk_groups, int k) -> Tensor", &moeSelect);
}
