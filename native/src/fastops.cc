// Unboxed fast paths for the operators that dominate a transformer's forward and backward
// bookkeeping. Each reads the same tagged operands the generic call would, so the JS side does not
// know which path runs. Anything unusual (a missing operand, another tag) falls back to the boxed
// call. Adding an operator here is an optimisation only; correctness never depends on it.
#include <unordered_map>

#include "call.h"

namespace ts {
namespace {

bool done(const Reader& r) { return r.p >= r.end; }

bool tensor(State& s, Reader& r, Inputs& in, const at::Tensor** out) {
  if (r.end - r.p < 2 || r.p[0] != T_TENSOR) return false;
  const at::Tensor& t = s.get(static_cast<int64_t>(r.p[1]));
  in.push_back({t.unsafeGetTensorImpl(), static_cast<int32_t>(r.p[1])});
  *out = &t;
  r.p += 2;
  return true;
}

bool integer(Reader& r, int64_t* out) {
  if (r.end - r.p < 2 || r.p[0] != T_INT) return false;
  const double v = r.p[1];
  if (v != std::floor(v) || std::fabs(v) > 9007199254740992.0) return false;
  *out = static_cast<int64_t>(v);
  r.p += 2;
  return true;
}

bool scalar(Reader& r, c10::Scalar* out) {
  if (r.end - r.p < 2) return false;
  const double tag = r.p[0];
  const double v = r.p[1];
  if (tag == T_INT) {
    if (v != std::floor(v) || std::fabs(v) > 9007199254740992.0) return false;
    *out = c10::Scalar(static_cast<int64_t>(v));
  } else if (tag == T_FLOAT) {
    *out = c10::Scalar(v);
  } else if (tag == T_BOOL) {
    *out = c10::Scalar(v != 0.0);
  } else {
    return false;
  }
  r.p += 2;
  return true;
}

// A trailing operand that may be absent or DEFAULT (keeping *out), or given.
bool optScalar(Reader& r, c10::Scalar* out) {
  if (done(r)) return true;
  if (r.p[0] == T_DEFAULT) {
    ++r.p;
    return true;
  }
  return scalar(r, out);
}

bool optDtype(Reader& r, c10::optional<at::ScalarType>* out) {
  if (done(r)) return true;
  if (r.p[0] == T_DEFAULT || r.p[0] == T_NONE) {
    ++r.p;
    return true;
  }
  if (r.end - r.p < 2 || r.p[0] != T_DTYPE) return false;
  *out = scalarTypeFromCode(static_cast<int64_t>(r.p[1]));
  r.p += 2;
  return true;
}

bool optBool(Reader& r, bool* out) {
  if (done(r)) return true;
  if (r.p[0] == T_DEFAULT) {
    ++r.p;
    return true;
  }
  if (r.end - r.p < 2 || (r.p[0] != T_BOOL && r.p[0] != T_INT)) return false;
  *out = r.p[1] != 0.0;
  r.p += 2;
  return true;
}

using IntVec = c10::SmallVector<int64_t, 8>;

bool intList(Reader& r, IntVec* out) {
  if (r.end - r.p < 2 || r.p[0] != T_INTLIST) return false;
  const double n = r.p[1];
  if (!(n >= 0) || n > static_cast<double>(r.end - r.p - 2)) return false;
  const size_t count = static_cast<size_t>(n);
  out->resize(count);
  for (size_t i = 0; i < count; ++i) {
    const double v = r.p[2 + i];
    if (v != std::floor(v) || std::fabs(v) > 9007199254740992.0) return false;
    (*out)[i] = static_cast<int64_t>(v);
  }
  r.p += 2 + count;
  return true;
}

bool optTensor(State& s, Reader& r, Inputs& in, const at::Tensor** out) {
  if (done(r)) return true;
  if (r.p[0] == T_NONE || r.p[0] == T_DEFAULT) {
    ++r.p;
    return true;
  }
  return tensor(s, r, in, out);
}

#define FAST(name) bool name(State& s, Reader& r, Inputs& in, at::Tensor& out)

// Binary arithmetic: (Tensor, Tensor[, alpha]) and (Tensor, Scalar[, alpha]).
#define BINARY_T(name, call)                                                 \
  FAST(name) {                                                               \
    const at::Tensor *a, *b;                                                 \
    if (!tensor(s, r, in, &a) || !tensor(s, r, in, &b) || !done(r)) return false; \
    out = call(*a, *b);                                                      \
    return true;                                                             \
  }
#define BINARY_S(name, call)                                                 \
  FAST(name) {                                                               \
    const at::Tensor* a;                                                     \
    c10::Scalar b;                                                           \
    if (!tensor(s, r, in, &a) || !scalar(r, &b) || !done(r)) return false;   \
    out = call(*a, b);                                                       \
    return true;                                                             \
  }
#define UNARY(name, call)                                     \
  FAST(name) {                                                \
    const at::Tensor* a;                                      \
    if (!tensor(s, r, in, &a) || !done(r)) return false;      \
    out = call(*a);                                           \
    return true;                                              \
  }

FAST(addT) {
  const at::Tensor *a, *b;
  c10::Scalar alpha(static_cast<int64_t>(1));
  if (!tensor(s, r, in, &a) || !tensor(s, r, in, &b) || !optScalar(r, &alpha) || !done(r)) return false;
  out = at::add(*a, *b, alpha);
  return true;
}
FAST(addS) {
  const at::Tensor* a;
  c10::Scalar b, alpha(static_cast<int64_t>(1));
  if (!tensor(s, r, in, &a) || !scalar(r, &b) || !optScalar(r, &alpha) || !done(r)) return false;
  out = at::add(*a, b, alpha);
  return true;
}
FAST(subT) {
  const at::Tensor *a, *b;
  c10::Scalar alpha(static_cast<int64_t>(1));
  if (!tensor(s, r, in, &a) || !tensor(s, r, in, &b) || !optScalar(r, &alpha) || !done(r)) return false;
  out = at::sub(*a, *b, alpha);
  return true;
}
FAST(subS) {
  const at::Tensor* a;
  c10::Scalar b, alpha(static_cast<int64_t>(1));
  if (!tensor(s, r, in, &a) || !scalar(r, &b) || !optScalar(r, &alpha) || !done(r)) return false;
  out = at::sub(*a, b, alpha);
  return true;
}
BINARY_T(mulT, at::mul)
BINARY_S(mulS, at::mul)
BINARY_T(divT, at::div)
BINARY_S(divS, at::div)
BINARY_S(powS, at::pow)
BINARY_T(matmul, at::matmul)
BINARY_T(mm, at::mm)
BINARY_T(bmm, at::bmm)
BINARY_T(maximum, at::maximum)
BINARY_T(minimum, at::minimum)
BINARY_T(eqT, at::eq)
BINARY_S(eqS, at::eq)
BINARY_S(gtS, at::gt)
BINARY_S(ltS, at::lt)
UNARY(neg, at::neg)
UNARY(exp, at::exp)
UNARY(log, at::log)
UNARY(sqrt, at::sqrt)
UNARY(rsqrt, at::rsqrt)
UNARY(sigmoid, at::sigmoid)
UNARY(tanh, at::tanh)
UNARY(relu, at::relu)
UNARY(silu, at::silu)
UNARY(square, at::square)
UNARY(detach, at::detach)
UNARY(clone, at::clone)

FAST(where) {
  const at::Tensor *c, *a, *b;
  if (!tensor(s, r, in, &c) || !tensor(s, r, in, &a) || !tensor(s, r, in, &b) || !done(r)) return false;
  out = at::where(*c, *a, *b);
  return true;
}

FAST(linear) {
  const at::Tensor *x, *w, *b = nullptr;
  if (!tensor(s, r, in, &x) || !tensor(s, r, in, &w) || !optTensor(s, r, in, &b) || !done(r)) return false;
  out = at::linear(*x, *w, b ? c10::optional<at::Tensor>(*b) : c10::nullopt);
  return true;
}

#define SOFTMAX_LIKE(name, call)                                                             \
  FAST(name) {                                                                               \
    const at::Tensor* x;                                                                     \
    int64_t dim;                                                                             \
    c10::optional<at::ScalarType> dtype;                                                     \
    if (!tensor(s, r, in, &x) || !integer(r, &dim) || !optDtype(r, &dtype) || !done(r)) return false; \
    out = call(*x, dim, dtype);                                                              \
    return true;                                                                             \
  }
SOFTMAX_LIKE(softmax, at::softmax)
SOFTMAX_LIKE(logSoftmax, at::log_softmax)

#define SHAPE_OP(name, call)                                                    \
  FAST(name) {                                                                  \
    const at::Tensor* x;                                                        \
    IntVec shape;                                                               \
    if (!tensor(s, r, in, &x) || !intList(r, &shape) || !done(r)) return false; \
    out = call(*x, shape);                                                      \
    return true;                                                                \
  }
SHAPE_OP(reshape, at::reshape)
SHAPE_OP(view, [](const at::Tensor& t, at::IntArrayRef sz) { return t.view(sz); })
SHAPE_OP(permute, at::permute)
SHAPE_OP(expand, [](const at::Tensor& t, at::IntArrayRef sz) { return t.expand(sz); })

FAST(transpose) {
  const at::Tensor* x;
  int64_t d0, d1;
  if (!tensor(s, r, in, &x) || !integer(r, &d0) || !integer(r, &d1) || !done(r)) return false;
  out = at::transpose(*x, d0, d1);
  return true;
}

FAST(unsqueeze) {
  const at::Tensor* x;
  int64_t d;
  if (!tensor(s, r, in, &x) || !integer(r, &d) || !done(r)) return false;
  out = at::unsqueeze(*x, d);
  return true;
}

FAST(select) {
  const at::Tensor* x;
  int64_t d, i;
  if (!tensor(s, r, in, &x) || !integer(r, &d) || !integer(r, &i) || !done(r)) return false;
  out = at::select(*x, d, i);
  return true;
}

bool optInt(Reader& r, c10::optional<int64_t>* out) {
  if (r.end - r.p >= 1 && r.p[0] == T_NONE) {
    ++r.p;
    return true;
  }
  int64_t v;
  if (!integer(r, &v)) return false;
  *out = v;
  return true;
}

FAST(slice) {
  const at::Tensor* x;
  int64_t d, step = 1;
  c10::optional<int64_t> start, end;
  if (!tensor(s, r, in, &x) || !integer(r, &d) || !optInt(r, &start) || !optInt(r, &end)) return false;
  if (!done(r) && !integer(r, &step)) return false;
  if (!done(r)) return false;
  out = at::slice(*x, d, start, end, step);
  return true;
}

FAST(embedding) {
  const at::Tensor *w, *idx;
  int64_t pad = -1;
  if (!tensor(s, r, in, &w) || !tensor(s, r, in, &idx)) return false;
  if (!done(r) && !integer(r, &pad)) return false;
  if (!done(r)) return false;
  out = at::embedding(*w, *idx, pad);
  return true;
}

#define REDUCE_DIMS(name, call)                                                                         \
  FAST(name) {                                                                                          \
    const at::Tensor* x;                                                                                \
    IntVec dims;                                                                                        \
    bool keep = false;                                                                                  \
    c10::optional<at::ScalarType> dtype;                                                                \
    if (!tensor(s, r, in, &x) || !intList(r, &dims) || !optBool(r, &keep) || !optDtype(r, &dtype) || !done(r)) \
      return false;                                                                                     \
    out = call(*x, at::IntArrayRef(dims), keep, dtype);                                                 \
    return true;                                                                                        \
  }
REDUCE_DIMS(sumDims, at::sum)
REDUCE_DIMS(meanDims, at::mean)

const std::unordered_map<std::string, FastFn>& table() {
  static const std::unordered_map<std::string, FastFn> t = {
      {"aten::add.Tensor", addT},        {"aten::add.Scalar", addS},         {"aten::sub.Tensor", subT},
      {"aten::sub.Scalar", subS},        {"aten::mul.Tensor", mulT},         {"aten::mul.Scalar", mulS},
      {"aten::div.Tensor", divT},        {"aten::div.Scalar", divS},         {"aten::pow.Tensor_Scalar", powS},
      {"aten::matmul", matmul},          {"aten::mm", mm},                   {"aten::bmm", bmm},
      {"aten::maximum", maximum},        {"aten::minimum", minimum},         {"aten::eq.Tensor", eqT},
      {"aten::eq.Scalar", eqS},          {"aten::gt.Scalar", gtS},           {"aten::lt.Scalar", ltS},
      {"aten::neg", neg},                {"aten::exp", exp},                 {"aten::log", log},
      {"aten::sqrt", sqrt},              {"aten::rsqrt", rsqrt},             {"aten::sigmoid", sigmoid},
      {"aten::tanh", tanh},              {"aten::relu", relu},               {"aten::silu", silu},
      {"aten::square", square},          {"aten::detach", detach},           {"aten::clone", clone},
      {"aten::where.self", where},       {"aten::linear", linear},           {"aten::softmax.int", softmax},
      {"aten::log_softmax.int", logSoftmax}, {"aten::reshape", reshape},     {"aten::view", view},
      {"aten::permute", permute},        {"aten::expand", expand},           {"aten::transpose.int", transpose},
      {"aten::unsqueeze", unsqueeze},    {"aten::select.int", select},       {"aten::slice.Tensor", slice},
      {"aten::embedding", embedding},    {"aten::sum.dim_IntList", sumDims}, {"aten::mean.dim", meanDims},
  };
  return t;
}

}  // namespace

FastFn findFastOp(const std::string& key) {
  const auto& t = table();
  auto it = t.find(key);
  return it == t.end() ? nullptr : it->second;
}

}  // namespace ts
