#include "core/dist/nccl_group.h"

#include <cuda_runtime.h>
#include <fmt/format.h>
#include <nccl.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "core/runtime/shared_library.h"

// NCCL's entry points, opened on first use (core/runtime/shared_library.h): forwarders with
// NCCL's own signatures, so the code below calls NCCL as usual.
namespace {

template <class F>
F real(const char* name) {
  static const std::string soname = "libnccl.so." + std::to_string(NCCL_MAJOR);
  return reinterpret_cast<F>(xp::runtime::library_symbol(xp::runtime::shared_library(soname, EXP_CUDA_LIBRARY_DIR), name, soname));
}

}  // namespace

#define EXP_NCCL_FORWARD(ret, name, params, args)                 \
  extern "C" ret name params {                                      \
    static const auto f = real<ret(*) params>(#name);               \
    return f args;                                                  \
  }
EXP_NCCL_FORWARD(ncclResult_t, ncclGetUniqueId, (ncclUniqueId * id), (id))
EXP_NCCL_FORWARD(ncclResult_t, ncclCommInitRank, (ncclComm_t * comm, int n, ncclUniqueId id, int rank), (comm, n, id, rank))
EXP_NCCL_FORWARD(ncclResult_t, ncclCommDestroy, (ncclComm_t comm), (comm))
EXP_NCCL_FORWARD(ncclResult_t, ncclCommAbort, (ncclComm_t comm), (comm))
EXP_NCCL_FORWARD(const char*, ncclGetErrorString, (ncclResult_t r), (r))
EXP_NCCL_FORWARD(ncclResult_t, ncclCommGetAsyncError, (ncclComm_t comm, ncclResult_t* e), (comm, e))
EXP_NCCL_FORWARD(ncclResult_t, ncclAllGather,
                 (const void* s, void* r, size_t n, ncclDataType_t t, ncclComm_t c, cudaStream_t st), (s, r, n, t, c, st))
EXP_NCCL_FORWARD(ncclResult_t, ncclBroadcast,
                 (const void* s, void* r, size_t n, ncclDataType_t t, int root, ncclComm_t c, cudaStream_t st),
                 (s, r, n, t, root, c, st))
EXP_NCCL_FORWARD(ncclResult_t, ncclSend, (const void* s, size_t n, ncclDataType_t t, int peer, ncclComm_t c, cudaStream_t st),
                 (s, n, t, peer, c, st))
EXP_NCCL_FORWARD(ncclResult_t, ncclRecv, (void* r, size_t n, ncclDataType_t t, int peer, ncclComm_t c, cudaStream_t st),
                 (r, n, t, peer, c, st))
EXP_NCCL_FORWARD(ncclResult_t, ncclGroupStart, (), ())
EXP_NCCL_FORWARD(ncclResult_t, ncclGroupEnd, (), ())
#undef EXP_NCCL_FORWARD

namespace xp::dist {

namespace {

using Clock = std::chrono::steady_clock;

void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw CollectiveError(fmt::format("CUDA {}: {}", what, cudaGetErrorString(e)));
}

class NcclGroup final : public ProcessGroup {
 public:
  NcclGroup(ProcessGroup& bootstrap, std::unique_ptr<ProcessGroup> owned, int device, Seconds timeout)
      : bootstrap_(bootstrap), owned_(std::move(owned)), device_(device), timeout_(timeout) {
    cuda_check(cudaSetDevice(device_), "set device");
    ncclUniqueId id{};
    if (bootstrap_.rank() == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    std::vector<std::byte> bytes(sizeof id);
    std::memcpy(bytes.data(), &id, sizeof id);
    bootstrap_.broadcast_bytes(bytes, 0);
    std::memcpy(&id, bytes.data(), sizeof id);
    check(ncclCommInitRank(&comm_, bootstrap_.size(), id, bootstrap_.rank()), "ncclCommInitRank");
    cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "stream");
  }
  ~NcclGroup() override {
    if (comm_) broken_.empty() ? ncclCommDestroy(comm_) : ncclCommAbort(comm_);
    if (scratch_) cudaFree(scratch_);
    if (stream_) cudaStreamDestroy(stream_);
  }
  int rank() const override { return bootstrap_.rank(); }
  int size() const override { return bootstrap_.size(); }
  std::string name() const override { return bootstrap_.name() + " (nccl)"; }
  Seconds timeout() const override { return timeout_; }

  void all_gather_bytes(std::span<const std::byte> in, std::span<std::byte> out) override {
    std::byte* d = device_buffer(in.size() * static_cast<size_t>(size() + 1));
    std::byte* gathered = d + in.size();
    cuda_check(cudaMemcpyAsync(d, in.data(), in.size(), cudaMemcpyHostToDevice, stream_), "copy in");
    run("all_gather", [&] { return ncclAllGather(d, gathered, in.size(), ncclUint8, comm_, stream_); });
    cuda_check(cudaMemcpyAsync(out.data(), gathered, out.size(), cudaMemcpyDeviceToHost, stream_), "copy out");
    wait("all_gather");
  }

  void broadcast_bytes(std::vector<std::byte>& data, int root) override {
    uint64_t n = data.size();  // the length first: only the root knows it
    broadcast_raw(&n, sizeof n, root);
    data.resize(n);
    broadcast_raw(data.data(), n, root);
  }

  void send_bytes(std::span<const std::byte> data, int peer) override {
    const uint64_t n = data.size();
    std::byte* d = device_buffer(sizeof n + n);
    cuda_check(cudaMemcpyAsync(d, &n, sizeof n, cudaMemcpyHostToDevice, stream_), "copy in");
    cuda_check(cudaMemcpyAsync(d + sizeof n, data.data(), n, cudaMemcpyHostToDevice, stream_), "copy in");
    run("send", [&] { return ncclSend(d, sizeof n, ncclUint8, peer, comm_, stream_); });
    if (n) run("send", [&] { return ncclSend(d + sizeof n, n, ncclUint8, peer, comm_, stream_); });
    wait("send");
  }

  std::vector<std::byte> recv_bytes(int peer) override {
    uint64_t n = 0;
    std::byte* d = device_buffer(sizeof n);
    run("recv", [&] { return ncclRecv(d, sizeof n, ncclUint8, peer, comm_, stream_); });
    cuda_check(cudaMemcpyAsync(&n, d, sizeof n, cudaMemcpyDeviceToHost, stream_), "copy out");
    wait("recv");
    std::vector<std::byte> data(n);
    if (n == 0) return data;
    d = device_buffer(n);
    run("recv", [&] { return ncclRecv(d, n, ncclUint8, peer, comm_, stream_); });
    cuda_check(cudaMemcpyAsync(data.data(), d, n, cudaMemcpyDeviceToHost, stream_), "copy out");
    wait("recv");
    return data;
  }

  std::unique_ptr<ProcessGroup> split(int color, const std::string& name, Seconds timeout) override {
    std::unique_ptr<ProcessGroup> sub = bootstrap_.split(color, name, timeout);
    ProcessGroup& ref = *sub;
    return std::make_unique<NcclGroup>(ref, std::move(sub), device_, timeout);
  }

 private:
  void check(ncclResult_t r, const char* what) const {
    if (r != ncclSuccess) throw CollectiveError(fmt::format("{} on {}: {}", what, describe(*this), ncclGetErrorString(r)));
  }
  void usable(const char* op) const {
    if (!broken_.empty()) throw CollectiveError(fmt::format("{} on {}: the group is unusable after {}", op, describe(*this), broken_));
  }
  template <class Launch>
  void run(const char* op, Launch launch) {
    usable(op);
    cuda_check(cudaSetDevice(device_), "set device");
    check(launch(), op);
  }
  void broadcast_raw(void* host, size_t n, int root) {
    if (n == 0) return;
    std::byte* d = device_buffer(n);
    if (rank() == root) cuda_check(cudaMemcpyAsync(d, host, n, cudaMemcpyHostToDevice, stream_), "copy in");
    run("broadcast", [&] { return ncclBroadcast(d, d, n, ncclUint8, root, comm_, stream_); });
    cuda_check(cudaMemcpyAsync(host, d, n, cudaMemcpyDeviceToHost, stream_), "copy out");
    wait("broadcast");
  }
  // Polls the stream against the deadline, watching NCCL's asynchronous errors (a peer that died
  // shows there); on either, aborts the communicator and throws.
  void wait(const char* op) {
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout_);
    for (int spins = 0;; ++spins) {
      const cudaError_t q = cudaStreamQuery(stream_);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) cuda_check(q, op);
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess) fail(op, ncclGetErrorString(async));
      if (Clock::now() > deadline)
        fail(op, fmt::format("timed out after {:g} s (NCCL cannot say which ranks are missing; "
                             "the other ranks' errors name themselves)", timeout_.count()));
      if (spins > 2000) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  [[noreturn]] void fail(const char* op, const std::string& why) {
    broken_ = fmt::format("{}: {}", op, why);
    throw CollectiveError(fmt::format("{} on {}: {}", op, describe(*this), why));
  }
  std::byte* device_buffer(size_t bytes) {
    if (bytes > capacity_) {
      cuda_check(cudaStreamSynchronize(stream_), "synchronize");
      if (scratch_) cudaFree(scratch_);
      scratch_ = nullptr;
      cuda_check(cudaMalloc(&scratch_, bytes), "scratch buffer");
      capacity_ = bytes;
    }
    return static_cast<std::byte*>(scratch_);
  }

  ProcessGroup& bootstrap_;
  std::unique_ptr<ProcessGroup> owned_;  // a split's bootstrap, held by its NCCL group
  int device_;
  Seconds timeout_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* scratch_ = nullptr;
  size_t capacity_ = 0;
  std::string broken_;
};

}  // namespace

bool nccl_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

std::unique_ptr<ProcessGroup> nccl_group(ProcessGroup& bootstrap, int device, Seconds timeout) {
  if (!nccl_available()) throw std::runtime_error("NCCL needs a GPU, and none is visible");
  return std::make_unique<NcclGroup>(bootstrap, nullptr, device, timeout);
}

}  // namespace xp::dist
