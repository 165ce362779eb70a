// The op set the first experiments need, one API for both backends: each op runs on the
// device of its inputs (all inputs on one device, same dtype unless stated). Float ops accept
// f32/f16/bf16 and accumulate in f32, so the CPU result is the reference the CUDA result is
// compared with. Results are new contiguous tensors.
#pragma once
#include "core/runtime/rng.h"
#include "core/tensor/tensor.h"

namespace xp::tensor {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& a, double s);
Tensor relu(const Tensor& a);
// 2-D matrix product [m,k] x [k,n] -> [m,n]; transposed views are fine.
Tensor matmul(const Tensor& a, const Tensor& b);
// Sum of all elements as a 1-element f32 tensor on the input's device.
Tensor sum(const Tensor& a);
// Column sums of a 2-D tensor: [m,n] -> [n].
Tensor sum_rows(const Tensor& a);

// Fills a CPU tensor with N(mean, std) draws from `rng`, in row-major order (reproducible).
void fill_normal(Tensor& t, runtime::RngStream& rng, double mean = 0.0, double std = 1.0);

}  // namespace xp::tensor
