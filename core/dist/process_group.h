// Process groups: the one interface through which domain code talks to its peers, whatever
// carries the bytes — threads of one process (exact, fast tests), OpenMPI processes started by
// mpirun or srun (CPU), later NCCL on GPUs. A group is the set of ranks that run the same
// collective calls in the same order (SPMD).
//
// Two promises every backend keeps:
// - Reductions are computed in a fixed order (rank 0's contribution, then rank 1's, …) on every
//   rank, so results depend neither on timing nor on the backend, and all ranks hold the same bits.
// - A collective that does not complete within the group's timeout throws CollectiveError naming
//   the group, the operation and the ranks that did not take part — never a hang.
#pragma once
#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace xp::dist {

// A collective that timed out, or whose peer failed or left.
class CollectiveError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using Seconds = std::chrono::duration<double>;

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // For messages: "tp", "world", … with the backend ("world (mpi)").
  virtual std::string name() const = 0;

  // Every rank's `in` (the same length on every rank) concatenated in rank order into `out`
  // (size() × in.size() bytes).
  virtual void all_gather_bytes(std::span<const std::byte> in, std::span<std::byte> out) = 0;
  // Root's `data` (any length) to every rank; other ranks' `data` is replaced.
  virtual void broadcast_bytes(std::vector<std::byte>& data, int root) = 0;
  // Point to point, in order between each pair. The thread and MPI backends buffer a send (it
  // returns before the peer receives, so two ranks may send to each other first); NCCL's waits
  // for the peer's receive.
  virtual void send_bytes(std::span<const std::byte> data, int peer) = 0;
  virtual std::vector<std::byte> recv_bytes(int peer) = 0;
  // The ranks that passed the same `color`, as a group of their own, ranked in this group's
  // order (MPI_Comm_split with key = rank), with `timeout` for its collectives. Every rank of
  // this group must call it.
  virtual std::unique_ptr<ProcessGroup> split(int color, const std::string& name, Seconds timeout) = 0;
  std::unique_ptr<ProcessGroup> split(int color, const std::string& name) { return split(color, name, timeout()); }
  virtual Seconds timeout() const = 0;

  // Typed collectives over the ones above.
  void all_reduce_sum(std::span<float> values);
  void all_reduce_sum(std::span<double> values);
  void all_reduce_max(std::span<double> values);
  template <class T>
  std::vector<T> all_gather(std::span<const T> in) {
    std::vector<T> out(in.size() * static_cast<size_t>(size()));
    all_gather_bytes(std::as_bytes(in), std::as_writable_bytes(std::span<T>(out)));
    return out;
  }
  void barrier();
};

// The name used in errors: "group 'tp' (mpi), rank 1 of 2".
std::string describe(const ProcessGroup& g);
// "ranks 1, 3" for messages.
std::string list_ranks(const std::vector<int>& ranks);

}  // namespace xp::dist
