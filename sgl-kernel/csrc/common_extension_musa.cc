// Registers the sgl_kernel ops of the MUSA build (the CUDA build of this tree uses this
// file too). Each op family registers its schemas and GPU impls from its own directory;
// upstream's MUSA registration file takes the sampling ops with the same one line.
#include <Python.h>

#include "sgl_kernel_musa_ops.h"

TORCH_LIBRARY_EXPAND(sgl_kernel, m) {
  register_sampling_ops(m);
  register_speculative_ops(m);
}

REGISTER_EXTENSION(common_ops)
