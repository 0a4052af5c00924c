// Shared pieces of the boxed call and the fast paths: the operand reader and input records.
#pragma once

#include <cmath>

#include "state.h"

namespace ts {

struct Reader {
  const double* p;
  const double* end;
  double next() {
    if (p >= end) throw UserError("argument encoding is truncated");
    return *p++;
  }
  int64_t nextInt() {
    const double v = next();
    if (!std::isfinite(v) || v != std::floor(v) || std::fabs(v) > 9007199254740992.0) {
      throw UserError("expected an integer, got " + std::to_string(v));
    }
    return static_cast<int64_t>(v);
  }
  size_t nextCount() {
    const int64_t n = nextInt();
    if (n < 0 || n > end - p) throw UserError("list length " + std::to_string(n) + " exceeds the encoded operands");
    return static_cast<size_t>(n);
  }
};

struct Input {
  const c10::TensorImpl* impl;
  int32_t id;
};

// Records the tensors passed as operands, to recognise results that alias one of them.
using Inputs = std::vector<Input>;

// FastFn (state.h): reads the operands, calls the typed ATen function (through the dispatcher,
// unboxed, as PyTorch's own bindings do), stores the result in `out`. Returns false before calling
// anything when the operands do not have the exact form it handles; the caller then runs the
// generic boxed call, which also produces the schema-aware error messages.
FastFn findFastOp(const std::string& key);

}  // namespace ts
