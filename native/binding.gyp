{
  "targets": [
    {
      "target_name": "tinyseek",
      "sources": [
        "src/addon.cc",
        "src/state.cc",
        "src/call.cc",
        "src/fastops.cc",
        "src/v8fast.cc",
        "src/tensors.cc",
        "src/autograd.cc",
        "src/runtime.cc",
        "src/dist.cc",
        "src/grad_reducer.cc",
        "src/kernels.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node -p \"process.env.TINYSEEK_TORCH_INCLUDES || ''\")"
      ],
      "defines": [
        "NAPI_CPP_EXCEPTIONS",
        "_GLIBCXX_USE_CXX11_ABI=<!(node -p \"process.env.TINYSEEK_TORCH_CXX11_ABI || '1'\")",
        "<!@(node -p \"process.env.TINYSEEK_TORCH_DEFINES || ''\")"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations", "-Wno-stringop-overflow"],
      "libraries": ["<!@(node -p \"process.env.TINYSEEK_TORCH_LIBS || ''\")"]
    }
  ]
}
