// core/nn's CUDA layers: cuBLAS SGEMMs for the linear layer, cuDNN for convolution, pooling
// and activations. Convolutions are pinned to FP32 FMA math (cuDNN may otherwise pick TF32
// tensor-core algorithms, 10-bit mantissas) so results agree with the CPU layers to rounding.
// Calls run on the default stream, with core/tensor's cuBLAS handle and checks.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <stdexcept>
#include <string>

#include "core/nn/cuda/layers.h"
#include "core/tensor/cuda/status.h"

namespace xp::nn::cuda {
namespace {

using tensor::cuda::check;
void check(cudnnStatus_t s, const char* what) {
  if (s != CUDNN_STATUS_SUCCESS) throw std::runtime_error(std::string("cuDNN ") + what + ": " + cudnnGetErrorString(s));
}

cudnnHandle_t dnn() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t x;
    check(cudnnCreate(&x), "create");
    return x;
  }();
  return h;
}

// Scratch memory for cuDNN's algorithms; grows, never shrinks.
void* workspace(size_t bytes) {
  static void* p = nullptr;
  static size_t capacity = 0;
  if (bytes > capacity) {
    check(cudaFree(p), "free workspace");
    p = nullptr;
    check(cudaMalloc(&p, bytes), "workspace");
    capacity = bytes;
  }
  return p;
}

// A cuDNN descriptor owned for one call: the derived constructor creates and sets it, this
// destroys it (a null one, if creation threw, is refused by cuDNN and ignored).
template <class T, cudnnStatus_t (*Destroy)(T)>
struct Owned {
  T d{};
  Owned() = default;
  ~Owned() { Destroy(d); }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
};

struct TensorDesc : Owned<cudnnTensorDescriptor_t, cudnnDestroyTensorDescriptor> {
  TensorDesc(int64_t n, int64_t c, int64_t h, int64_t w) {
    check(cudnnCreateTensorDescriptor(&d), "tensor descriptor");
    check(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, static_cast<int>(n), static_cast<int>(c),
                                     static_cast<int>(h), static_cast<int>(w)),
          "tensor descriptor");
  }
};

struct FilterDesc : Owned<cudnnFilterDescriptor_t, cudnnDestroyFilterDescriptor> {
  FilterDesc(int64_t out, int64_t in, int64_t k) {
    check(cudnnCreateFilterDescriptor(&d), "filter descriptor");
    check(cudnnSetFilter4dDescriptor(d, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, static_cast<int>(out), static_cast<int>(in),
                                     static_cast<int>(k), static_cast<int>(k)),
          "filter descriptor");
  }
};

// Everything one convolution call needs.
struct Conv : Owned<cudnnConvolutionDescriptor_t, cudnnDestroyConvolutionDescriptor> {
  TensorDesc x, y, bias;
  FilterDesc w;
  explicit Conv(const ConvGeometry& g)
      : x(g.n, g.c, g.h, g.w), y(g.n, g.out, g.oh, g.ow), bias(1, g.out, 1, 1), w(g.out, g.c, g.kernel) {
    check(cudnnCreateConvolutionDescriptor(&d), "convolution descriptor");
    const int p = static_cast<int>(g.pad), s = static_cast<int>(g.stride);
    check(cudnnSetConvolution2dDescriptor(d, p, p, s, s, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
          "convolution descriptor");
    check(cudnnSetConvolutionMathType(d, CUDNN_FMA_MATH), "convolution math type");
  }
};

// The heuristics' best algorithm that runs in FP32 FMA math; `fallback` always exists.
template <class Perf, class Algo>
Algo pick(const Perf* perf, int count, Algo fallback) {
  for (int i = 0; i < count; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].mathType == CUDNN_FMA_MATH) return perf[i].algo;
  return fallback;
}

constexpr float kOne = 1.0f, kZero = 0.0f;
constexpr int kAlgos = 8;

__global__ void add_bias_rows(float* y, const float* b, int64_t n, int64_t out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * out; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += b[i % out];
}

__global__ void add_column_sums(const float* gy, float* gb, int64_t n, int64_t out) {
  int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= out) return;
  float s = 0;
  for (int64_t r = 0; r < n; ++r) s += gy[r * out + c];
  gb[c] += s;
}

unsigned blocks_for(int64_t n) {
  int64_t b = (n + 255) / 256;
  return static_cast<unsigned>(b < 4096 ? (b > 0 ? b : 1) : 4096);
}

}  // namespace

bool available() { return true; }

void linear_forward(const float* x, const float* w, const float* b, float* y, int64_t n, int64_t in, int64_t out) {
  // Row-major y[n, out] = x·wᵀ is column-major yᵀ[out, n] = wᵀᵀ·xᵀ: w read transposed.
  const int ni = static_cast<int>(n), ii = static_cast<int>(in), oi = static_cast<int>(out);
  check(cublasSgemm(tensor::cuda::default_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, oi, ni, ii, &kOne, w, ii, x, ii, &kZero, y, oi), "linear forward");
  if (b) {
    add_bias_rows<<<blocks_for(n * out), 256>>>(y, b, n, out);
    check(cudaGetLastError(), "bias");
  }
}

void linear_backward(const float* x, const float* w, const float* gy, float* gx, float* gw, float* gb, int64_t n,
                     int64_t in, int64_t out) {
  const int ni = static_cast<int>(n), ii = static_cast<int>(in), oi = static_cast<int>(out);
  // gxᵀ[in, n] = wᵀ[in, out]·gyᵀ[out, n] (column-major views of the row-major matrices).
  check(cublasSgemm(tensor::cuda::default_cublas(), CUBLAS_OP_N, CUBLAS_OP_N, ii, ni, oi, &kOne, w, ii, gy, oi, &kZero, gx, ii), "linear dx");
  // gwᵀ[in, out] += xᵀ[in, n]·gy[n, out].
  if (gw) check(cublasSgemm(tensor::cuda::default_cublas(), CUBLAS_OP_N, CUBLAS_OP_T, ii, oi, ni, &kOne, x, ii, gy, oi, &kOne, gw, ii), "linear dw");
  if (gb) {
    add_column_sums<<<static_cast<unsigned>((out + 255) / 256), 256>>>(gy, gb, n, out);
    check(cudaGetLastError(), "bias gradient");
  }
}

void conv2d_forward(const ConvGeometry& g, const float* x, const float* w, const float* b, float* y) {
  Conv c(g);
  cudnnConvolutionFwdAlgoPerf_t perf[kAlgos];
  int count = 0;
  check(cudnnGetConvolutionForwardAlgorithm_v7(dnn(), c.x.d, c.w.d, c.d, c.y.d, kAlgos, &count, perf), "forward algorithm");
  auto algo = pick(perf, count, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM);
  size_t bytes = 0;
  check(cudnnGetConvolutionForwardWorkspaceSize(dnn(), c.x.d, c.w.d, c.d, c.y.d, algo, &bytes), "forward workspace");
  check(cudnnConvolutionForward(dnn(), &kOne, c.x.d, x, c.w.d, w, c.d, algo, workspace(bytes), bytes, &kZero, c.y.d, y),
        "convolution forward");
  if (b) check(cudnnAddTensor(dnn(), &kOne, c.bias.d, b, &kOne, c.y.d, y), "convolution bias");
}

void conv2d_backward(const ConvGeometry& g, const float* x, const float* w, const float* gy, float* gx, float* gw,
                     float* gb) {
  Conv c(g);
  int count = 0;
  size_t bytes = 0;
  cudnnConvolutionBwdDataAlgoPerf_t data_perf[kAlgos];
  check(cudnnGetConvolutionBackwardDataAlgorithm_v7(dnn(), c.w.d, c.y.d, c.d, c.x.d, kAlgos, &count, data_perf),
        "backward-data algorithm");
  auto data_algo = pick(data_perf, count, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0);
  check(cudnnGetConvolutionBackwardDataWorkspaceSize(dnn(), c.w.d, c.y.d, c.d, c.x.d, data_algo, &bytes),
        "backward-data workspace");
  check(cudnnConvolutionBackwardData(dnn(), &kOne, c.w.d, w, c.y.d, gy, c.d, data_algo, workspace(bytes), bytes, &kZero,
                                     c.x.d, gx),
        "convolution backward data");
  if (gw) {
    cudnnConvolutionBwdFilterAlgoPerf_t filter_perf[kAlgos];
    check(cudnnGetConvolutionBackwardFilterAlgorithm_v7(dnn(), c.x.d, c.y.d, c.d, c.w.d, kAlgos, &count, filter_perf),
          "backward-filter algorithm");
    auto filter_algo = pick(filter_perf, count, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0);
    check(cudnnGetConvolutionBackwardFilterWorkspaceSize(dnn(), c.x.d, c.y.d, c.d, c.w.d, filter_algo, &bytes),
          "backward-filter workspace");
    check(cudnnConvolutionBackwardFilter(dnn(), &kOne, c.x.d, x, c.y.d, gy, c.d, filter_algo, workspace(bytes), bytes,
                                         &kOne, c.w.d, gw),
          "convolution backward filter");
  }
  if (gb) check(cudnnConvolutionBackwardBias(dnn(), &kOne, c.y.d, gy, &kOne, c.bias.d, gb), "convolution backward bias");
}

namespace {
struct Pool : Owned<cudnnPoolingDescriptor_t, cudnnDestroyPoolingDescriptor> {
  TensorDesc x, y;
  explicit Pool(const PoolGeometry& g) : x(g.n, g.c, g.h, g.w), y(g.n, g.c, g.oh, g.ow) {
    check(cudnnCreatePoolingDescriptor(&d), "pooling descriptor");
    const int k = static_cast<int>(g.kernel), s = static_cast<int>(g.stride);
    // Deterministic max: a tie's gradient goes to one input, as the CPU layer's argmax does.
    check(cudnnSetPooling2dDescriptor(d, g.max ? CUDNN_POOLING_MAX_DETERMINISTIC : CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING,
                                      CUDNN_NOT_PROPAGATE_NAN, k, k, 0, 0, s, s),
          "pooling descriptor");
  }
};

struct Act : Owned<cudnnActivationDescriptor_t, cudnnDestroyActivationDescriptor> {
  TensorDesc t;
  Act(Activation a, int64_t n) : t(1, 1, 1, n) {
    check(cudnnCreateActivationDescriptor(&d), "activation descriptor");
    check(cudnnSetActivationDescriptor(d, a == Activation::kReLU ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_TANH,
                                       CUDNN_NOT_PROPAGATE_NAN, 0.0),
          "activation descriptor");
  }
};
}  // namespace

void pool2d_forward(const PoolGeometry& g, const float* x, float* y) {
  Pool p(g);
  check(cudnnPoolingForward(dnn(), p.d, &kOne, p.x.d, x, &kZero, p.y.d, y), "pooling forward");
}

void pool2d_backward(const PoolGeometry& g, const float* x, const float* y, const float* gy, float* gx) {
  Pool p(g);
  check(cudnnPoolingBackward(dnn(), p.d, &kOne, p.y.d, y, p.y.d, gy, p.x.d, x, &kZero, p.x.d, gx), "pooling backward");
}

void activation_forward(Activation a, const float* x, float* y, int64_t n) {
  Act act(a, n);
  check(cudnnActivationForward(dnn(), act.d, &kOne, act.t.d, x, &kZero, act.t.d, y), "activation forward");
}

void activation_backward(Activation a, const float* y, const float* gy, float* gx, int64_t n) {
  Act act(a, n);
  // ReLU's mask (x > 0) equals (y > 0), and tanh's derivative is 1 - y², so y stands in for x.
  check(cudnnActivationBackward(dnn(), act.d, &kOne, act.t.d, y, act.t.d, gy, act.t.d, y, &kZero, act.t.d, gx),
        "activation backward");
}

}  // namespace xp::nn::cuda
