// The generic boxed call: any operator registered with libtorch's dispatcher, by name and overload.
//
// Operands arrive tagged in the shared Float64 buffer (layout in src/core/native.ts); each is
// checked against the operator's schema before the call, missing trailing operands take the
// schema's defaults, and results are written back tagged into the same buffer. Operator handles
// are looked up once and cached by integer id. Nothing here knows about specific operators.
#include <cmath>
#include <sstream>

#include "call.h"

namespace ts {
namespace {

const char* tagName(int tag) {
  switch (tag) {
    case T_NONE: return "None";
    case T_TENSOR: return "Tensor";
    case T_INT: return "int";
    case T_FLOAT: return "float";
    case T_BOOL: return "bool";
    case T_INTLIST: return "int[]";
    case T_TENSORLIST: return "Tensor[]";
    case T_OPTTENSORLIST: return "Tensor?[]";
    case T_FLOATLIST: return "float[]";
    case T_DTYPE: return "dtype";
    case T_STRING: return "str";
    case T_DEVICE: return "Device";
    case T_GENERATOR: return "Generator";
    case T_DEFAULT: return "default";
    case T_BOOLLIST: return "bool[]";
    default: return "unknown";
  }
}

struct Ctx {
  State& s;
  const OpEntry& op;
  const c10::Argument* arg;
  size_t index;
  std::vector<Input>& inputs;

  [[noreturn]] void mismatch(const c10::TypePtr& type, int tag) const {
    throw UserError("argument " + std::to_string(index) + " '" + arg->name() + "' expects " + type->str() +
                    ", got " + tagName(tag));
  }
  at::Tensor tensor(int64_t id) {
    at::Tensor& t = s.get(id);
    inputs.push_back({t.unsafeGetTensorImpl(), static_cast<int32_t>(id)});
    return t;
  }
};

bool isIntLike(c10::TypeKind k) {
  return k == c10::TypeKind::IntType || k == c10::TypeKind::SymIntType || k == c10::TypeKind::ScalarTypeType ||
         k == c10::TypeKind::LayoutType || k == c10::TypeKind::MemoryFormatType;
}

int64_t scalarToInt(Ctx& c, const c10::TypePtr& type, int tag, double v) {
  if (tag == T_INT || tag == T_BOOL || tag == T_DTYPE || (tag == T_FLOAT && v == std::floor(v) && std::isfinite(v))) {
    if (tag == T_DTYPE) scalarTypeFromCode(static_cast<int64_t>(v));
    return static_cast<int64_t>(v);
  }
  c.mismatch(type, tag);
}

c10::IValue convert(Ctx& c, const c10::TypePtr& type, int tag, Reader& r) {  // NOLINT(misc-no-recursion)
  const c10::TypeKind kind = type->kind();
  if (kind == c10::TypeKind::OptionalType) {
    if (tag == T_NONE) {
      return c10::IValue();
    }
    return convert(c, type->expectRef<c10::OptionalType>().getElementType(), tag, r);
  }
  switch (kind) {
    case c10::TypeKind::TensorType:
      if (tag != T_TENSOR) c.mismatch(type, tag);
      return c.tensor(r.nextInt());
    case c10::TypeKind::FloatType:
      if (tag != T_FLOAT && tag != T_INT) c.mismatch(type, tag);
      return r.next();
    case c10::TypeKind::BoolType:
      if (tag != T_BOOL && tag != T_INT) c.mismatch(type, tag);
      return r.next() != 0.0;
    case c10::TypeKind::NumberType: {
      const double v = r.next();
      if (tag == T_INT) return static_cast<int64_t>(v);
      if (tag == T_FLOAT) return v;
      if (tag == T_BOOL) return v != 0.0;
      c.mismatch(type, tag);
    }
    case c10::TypeKind::StringType: {
      if (tag != T_STRING) c.mismatch(type, tag);
      const int64_t id = r.nextInt();
      if (id < 0 || static_cast<size_t>(id) >= c.s.strings.size()) throw UserError("unknown string id");
      return c.s.strings[id];
    }
    case c10::TypeKind::DeviceObjType: {
      if (tag != T_DEVICE) c.mismatch(type, tag);
      const int64_t t = r.nextInt();
      const int64_t i = r.nextInt();
      return deviceFromCode(t, i);
    }
    case c10::TypeKind::GeneratorType: {
      if (tag != T_GENERATOR) c.mismatch(type, tag);
      const int64_t id = r.nextInt();
      if (id < 0 || static_cast<size_t>(id) >= c.s.generators.size()) throw UserError("unknown generator id");
      return c.s.generators[id];
    }
    case c10::TypeKind::ListType: {
      const c10::TypePtr elem = type->expectRef<c10::ListType>().getElementType();
      const c10::TypeKind ek = elem->kind();
      // An empty list arrives as an empty int list whatever its element type.
      if (tag == T_INTLIST && r.p < r.end && *r.p == 0) tag = ek == c10::TypeKind::FloatType ? T_FLOATLIST
                                                          : ek == c10::TypeKind::BoolType ? T_BOOLLIST
                                                          : ek == c10::TypeKind::TensorType ? T_TENSORLIST
                                                          : ek == c10::TypeKind::OptionalType ? T_OPTTENSORLIST : T_INTLIST;
      if (isIntLike(ek)) {
        if (tag == T_INT && c.arg->N()) {  // int[2] accepts a single int, as in PyTorch
          const int64_t v = r.nextInt();
          return c10::List<int64_t>(std::vector<int64_t>(static_cast<size_t>(*c.arg->N()), v));
        }
        if (tag != T_INTLIST) c.mismatch(type, tag);
        const size_t n = r.nextCount();
        c10::List<int64_t> out;
        out.reserve(n);
        for (size_t i = 0; i < n; ++i) out.push_back(r.nextInt());
        return out;
      }
      if (ek == c10::TypeKind::FloatType) {
        if (tag != T_FLOATLIST && tag != T_INTLIST) c.mismatch(type, tag);
        const size_t n = r.nextCount();
        c10::List<double> out;
        out.reserve(n);
        for (size_t i = 0; i < n; ++i) out.push_back(r.next());
        return out;
      }
      if (ek == c10::TypeKind::NumberType) {  // Scalar[]
        if (tag != T_FLOATLIST && tag != T_INTLIST) c.mismatch(type, tag);
        const size_t n = r.nextCount();
        c10::impl::GenericList out(c10::NumberType::get());
        out.reserve(n);
        for (size_t i = 0; i < n; ++i) {
          const double v = r.next();
          if (tag == T_INTLIST) {
            out.push_back(static_cast<int64_t>(v));
          } else {
            out.push_back(v);
          }
        }
        return out;
      }
      if (ek == c10::TypeKind::BoolType) {
        if (tag != T_BOOLLIST && tag != T_INTLIST) c.mismatch(type, tag);
        const size_t n = r.nextCount();
        c10::List<bool> out;
        out.reserve(n);
        for (size_t i = 0; i < n; ++i) out.push_back(r.next() != 0.0);
        return out;
      }
      if (ek == c10::TypeKind::TensorType) {
        if (tag != T_TENSORLIST) c.mismatch(type, tag);
        const size_t n = r.nextCount();
        c10::List<at::Tensor> out;
        out.reserve(n);
        for (size_t i = 0; i < n; ++i) out.push_back(c.tensor(r.nextInt()));
        return out;
      }
      if (ek == c10::TypeKind::OptionalType &&
          elem->expectRef<c10::OptionalType>().getElementType()->kind() == c10::TypeKind::TensorType) {
        if (tag != T_OPTTENSORLIST && tag != T_TENSORLIST) c.mismatch(type, tag);
        const size_t n = r.nextCount();
        c10::List<c10::optional<at::Tensor>> out;
        out.reserve(n);
        for (size_t i = 0; i < n; ++i) {
          const int64_t id = r.nextInt();
          if (id < 0) {
            out.push_back(c10::nullopt);
          } else {
            out.push_back(c.tensor(id));
          }
        }
        return out;
      }
      throw UserError("argument '" + c.arg->name() + "' has list type " + type->str() + ", which tinyseek cannot pass");
    }
    default:
      if (isIntLike(kind)) return scalarToInt(c, type, tag, r.next());
      throw UserError("argument '" + c.arg->name() + "' has type " + type->str() + ", which tinyseek cannot pass");
  }
}

struct Writer {
  double* p;
  double* end;
  std::vector<int32_t> created;  // handles made so far, released if writing fails part-way
  void put(double v) {
    if (p >= end) throw UserError("operator results do not fit the result buffer");
    *p++ = v;
  }
  int32_t fresh(State& s, const at::Tensor& t) {
    const int32_t id = s.put(t);
    created.push_back(id);
    return id;
  }
};

void writeTensor(State& s, const at::Tensor& t, Writer& w, const std::vector<Input>& inputs) {
  if (!t.defined()) {
    w.put(T_NONE);
    return;
  }
  for (const Input& in : inputs) {
    if (in.impl == t.unsafeGetTensorImpl()) {
      w.put(T_ALIAS);
      w.put(in.id);
      return;
    }
  }
  w.put(T_TENSOR);
  w.put(w.fresh(s, t));
}

void writeValue(State& s, const c10::IValue& v, Writer& w, const std::vector<Input>& inputs) {
  if (v.isTensor()) {
    writeTensor(s, v.toTensor(), w, inputs);
  } else if (v.isNone()) {
    w.put(T_NONE);
  } else if (v.isInt()) {
    w.put(T_INT);
    w.put(static_cast<double>(v.toInt()));
  } else if (v.isDouble()) {
    w.put(T_FLOAT);
    w.put(v.toDouble());
  } else if (v.isBool()) {
    w.put(T_BOOL);
    w.put(v.toBool() ? 1 : 0);
  } else if (v.isTensorList()) {
    const auto list = v.toTensorList();
    w.put(T_TENSORLIST);
    w.put(static_cast<double>(list.size()));
    for (size_t i = 0; i < list.size(); ++i) {
      const at::Tensor t = list.get(i);
      if (!t.defined()) throw UserError("operator returned an undefined tensor inside a list");
      bool alias = false;
      for (const Input& in : inputs) {
        if (in.impl == t.unsafeGetTensorImpl()) {
          w.put(-2 - in.id);  // aliases are encoded as -2 - id inside lists
          alias = true;
          break;
        }
      }
      if (!alias) w.put(w.fresh(s, t));
    }
  } else if (v.isIntList()) {
    const auto list = v.toIntList();
    w.put(T_INTLIST);
    w.put(static_cast<double>(list.size()));
    for (size_t i = 0; i < list.size(); ++i) w.put(static_cast<double>(list.get(i)));
  } else if (v.isDoubleList()) {
    const auto list = v.toDoubleList();
    w.put(T_FLOATLIST);
    w.put(static_cast<double>(list.size()));
    for (size_t i = 0; i < list.size(); ++i) w.put(list.get(i));
  } else if (v.isTuple()) {
    for (const c10::IValue& e : v.toTupleRef().elements()) writeValue(s, e, w, inputs);
  } else {
    throw UserError("operator returned a " + v.tagKind() + ", which tinyseek cannot read back");
  }
}

}  // namespace

int32_t resolveOp(State& s, const std::string& name, const std::string& overload) {
  const std::string key = overload.empty() ? name : name + "." + overload;
  auto it = s.opIndex.find(key);
  if (it != s.opIndex.end()) return it->second;
  auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!handle) {
    throw UserError("unknown operator " + key + " (check the name and overload against native_functions.yaml of this libtorch)");
  }
  const int32_t id = static_cast<int32_t>(s.ops.size());
  s.ops.push_back({*handle, key, handle->schema().arguments().size(), findFastOp(key)});
  s.opIndex.emplace(key, id);
  return id;
}

// Runs the operator whose id is in buf[0] with the operands encoded in buf[2 .. 2 + buf[1]].
// Returns the new handle when the result is a single fresh tensor, otherwise -1 with the results
// encoded as [count, tag, value...] from buf[0].
int32_t callOp(State& s) {
  double* buf = s.buf;
  const double rawId = buf[0];
  const double rawLen = buf[1];
  if (!(rawId >= 0 && rawId < static_cast<double>(s.ops.size()))) throw UserError("unknown operator id");
  if (!(rawLen >= 0 && rawLen <= static_cast<double>(kBufWords - 2))) throw UserError("bad operand length");
  const OpEntry& op = s.ops[static_cast<size_t>(rawId)];
  const auto& args = op.handle.schema().arguments();
  Reader r{buf + 2, buf + 2 + static_cast<size_t>(rawLen)};

  // Reused across calls (callOp is never re-entered): no allocation for the operand vectors.
  static thread_local std::vector<Input> inputs;
  static thread_local torch::jit::Stack stack;
  inputs.clear();
  stack.clear();
  if (op.fast != nullptr) {
    Reader fr = r;
    at::Tensor out;
    if (op.fast(s, fr, inputs, out)) {
      for (const Input& in : inputs) {
        if (in.impl == out.unsafeGetTensorImpl()) {
          buf[0] = 1;
          buf[1] = T_ALIAS;
          buf[2] = in.id;
          return -1;
        }
      }
      return s.put(std::move(out));
    }
    inputs.clear();
  }
  try {
    for (size_t i = 0; i < args.size(); ++i) {
      const c10::Argument& arg = args[i];
      if (r.p >= r.end || *r.p == T_DEFAULT) {
        if (r.p < r.end) ++r.p;
        if (!arg.default_value()) {
          throw UserError("missing argument " + std::to_string(i) + " '" + arg.name() + "' (" + arg.type()->str() + ")");
        }
        stack.push_back(*arg.default_value());
        continue;
      }
      const int tag = static_cast<int>(r.next());
      Ctx c{s, op, &arg, i, inputs};
      stack.push_back(convert(c, arg.type(), tag, r));
    }
    if (r.p != r.end) {
      throw UserError("too many arguments: the schema takes " + std::to_string(args.size()));
    }
  } catch (const UserError& e) {
    stack.clear();
    std::ostringstream schema;
    schema << op.handle.schema();
    throw UserError(std::string(e.what()) + " [schema: " + schema.str() + "]");
  }

  try {
    op.handle.callBoxed(&stack);
  } catch (...) {
    stack.clear();  // drop the operands now rather than at the next call
    throw;
  }

  if (stack.size() == 1 && stack[0].isTensor()) {
    at::Tensor t = std::move(stack[0]).toTensor();
    stack.clear();
    if (t.defined()) {
      bool alias = false;
      for (const Input& in : inputs) alias = alias || in.impl == t.unsafeGetTensorImpl();
      if (!alias) return s.put(std::move(t));
    }
    stack.emplace_back(std::move(t));
  }
  Writer w{buf + 1, buf + kBufWords, {}};
  try {
    for (const c10::IValue& v : stack) writeValue(s, v, w, inputs);
  } catch (...) {
    for (const int32_t id : w.created) s.release(id);
    stack.clear();
    throw;
  }
  buf[0] = static_cast<double>(stack.size());
  stack.clear();
  return -1;
}

const std::string& opName(State& s) {
  static const std::string unknown = "aten::<unknown>";
  const double rawId = s.buf[0];
  if (rawId >= 0 && rawId < static_cast<double>(s.ops.size())) return s.ops[static_cast<size_t>(rawId)].name;
  return unknown;
}

}  // namespace ts
