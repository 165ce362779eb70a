// The OpenMPI backend. Every collective is built from non-blocking point-to-point messages that
// are polled against a deadline, so a peer that died or hangs becomes a CollectiveError naming
// it (MPI's own collectives block without a bound and cannot say who is missing). Small groups
// (tensor parallelism within a node) are its use: an all-gather sends size − 1 messages a rank.
#include <fmt/format.h>
#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "core/dist/launch.h"

namespace xp::dist {

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kTagCollective = 1, kTagPointToPoint = 2;

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw CollectiveError(fmt::format("{}: {}", what, std::string(msg, static_cast<size_t>(len))));
}

// MPI started once per process (only the main thread calls it) and finalized at exit.
void ensure_mpi() {
  static std::once_flag once;
  std::call_once(once, [] {
    int ready = 0;
    MPI_Initialized(&ready);
    if (ready) return;
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    std::atexit([] {
      int done = 0;
      MPI_Finalized(&done);
      if (!done) MPI_Finalize();
    });
  });
}

class MpiGroup final : public ProcessGroup {
 public:
  MpiGroup(MPI_Comm comm, std::string name, Seconds timeout) : comm_(comm), name_(std::move(name)), timeout_(timeout) {
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);  // errors come back as codes, then as exceptions
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiGroup() override {
    int done = 0;
    MPI_Finalized(&done);
    if (done) return;
    // Sends still in flight are given until their deadlines; one that never completes keeps its
    // buffer (leaked: MPI may still read it) rather than end the process.
    for (auto& p : posted_) {
      int sent = 0;
      while (MPI_Test(&p->req, &sent, MPI_STATUS_IGNORE) == MPI_SUCCESS && !sent && Clock::now() < p->deadline)
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      if (!sent) p.release();
    }
    MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return name_ + " (mpi)"; }
  Seconds timeout() const override { return timeout_; }

  void all_gather_bytes(std::span<const std::byte> in, std::span<std::byte> out) override {
    usable("all_gather");
    const int n = static_cast<int>(in.size());
    std::memcpy(out.data() + static_cast<size_t>(rank_) * in.size(), in.data(), in.size());
    Pending p;
    for (int r = 0; r < size_; ++r)
      if (r != rank_) check(MPI_Irecv(out.data() + static_cast<size_t>(r) * in.size(), n, MPI_BYTE, r, kTagCollective,
                                      comm_, p.add(r, true)), "MPI_Irecv");
    for (int r = 0; r < size_; ++r)
      if (r != rank_) check(MPI_Isend(in.data(), n, MPI_BYTE, r, kTagCollective, comm_, p.add(r, false)), "MPI_Isend");
    wait_all("all_gather", p);
  }

  void broadcast_bytes(std::vector<std::byte>& data, int root) override {
    usable("broadcast");
    if (rank_ != root) {
      data = receive("broadcast", root, kTagCollective);
      return;
    }
    Pending p;
    for (int r = 0; r < size_; ++r)
      if (r != root)
        check(MPI_Isend(data.data(), static_cast<int>(data.size()), MPI_BYTE, r, kTagCollective, comm_, p.add(r, false)),
              "MPI_Isend");
    wait_all("broadcast", p);
  }

  // Buffered, as the thread backend's: the bytes are copied and the send completes in the
  // background, so two ranks may send to each other before either receives (a pipeline's stages
  // and its controller do). A send not received by its deadline breaks the group, naming the peer,
  // at this group's next operation.
  void send_bytes(std::span<const std::byte> data, int peer) override {
    usable("send");
    reap("send");
    auto p = std::make_unique<Posted>();
    p->data.assign(data.begin(), data.end());
    p->peer = peer;
    p->deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout_);
    check(MPI_Isend(p->data.data(), static_cast<int>(p->data.size()), MPI_BYTE, peer, kTagPointToPoint, comm_, &p->req),
          "MPI_Isend");
    posted_.push_back(std::move(p));
  }

  std::vector<std::byte> recv_bytes(int peer) override {
    usable("recv");
    reap("recv");
    return receive("recv", peer, kTagPointToPoint);
  }

  std::unique_ptr<ProcessGroup> split(int color, const std::string& name, Seconds timeout) override {
    usable("split");
    MPI_Comm sub{};
    check(MPI_Comm_split(comm_, color, rank_, &sub), "MPI_Comm_split");
    return std::make_unique<MpiGroup>(sub, name, timeout);
  }

 private:
  // The requests of one operation, with the peer of each and whether it receives. add()'s
  // pointer is for the MPI call that fills it in, made before the next add().
  struct Pending {
    std::vector<MPI_Request> reqs;
    std::vector<int> peers;
    std::vector<bool> receives;
    MPI_Request* add(int peer, bool recv) {
      reqs.push_back(MPI_REQUEST_NULL);
      peers.push_back(peer);
      receives.push_back(recv);
      return &reqs.back();
    }
  };

  // A buffered send in flight; its bytes live until MPI has sent them.
  struct Posted {
    std::vector<std::byte> data;
    MPI_Request req = MPI_REQUEST_NULL;
    int peer = 0;
    Clock::time_point deadline;
  };

  // Drops the buffered sends that completed; one past its deadline breaks the group.
  void reap(const char* op) {
    for (auto it = posted_.begin(); it != posted_.end();) {
      int sent = 0;
      check(MPI_Test(&(*it)->req, &sent, MPI_STATUS_IGNORE), op);
      if (sent) {
        it = posted_.erase(it);
        continue;
      }
      if (Clock::now() > (*it)->deadline) {
        const int peer = (*it)->peer;
        it->release();  // MPI may still read the buffer
        posted_.erase(it);
        broken_ = fmt::format("send timed out after {:g} s waiting for rank {}", timeout_.count(), peer);
        throw CollectiveError(fmt::format("{} on {}: a send timed out after {:g} s waiting for rank {}", op, describe(*this),
                                          timeout_.count(), peer));
      }
      ++it;
    }
  }

  // After a timeout the group is not used again: a late peer's messages could match the next
  // operation's. (exp run then ends every rank of the launch, naming the late one.)
  void usable(const char* op) const {
    if (!broken_.empty()) throw CollectiveError(fmt::format("{} on {}: the group is unusable after {}", op, describe(*this), broken_));
  }

  // Polls `p` until all complete: spinning first (a tensor-parallel all-reduce answers within
  // microseconds), then yielding, then sleeping, so that a rank waiting on a slow peer does not
  // take the core that peer needs on an oversubscribed machine.
  void wait_all(const char* op, Pending& p) {
    const auto start = Clock::now();
    const auto deadline = start + std::chrono::duration_cast<Clock::duration>(timeout_);
    for (int spins = 0;; ++spins) {
      int done = 0;
      check(MPI_Testall(static_cast<int>(p.reqs.size()), p.reqs.data(), &done, MPI_STATUSES_IGNORE), op);
      if (done) return;
      const auto now = Clock::now();
      if (now > deadline) abandon(op, p);
      pause(spins, now - start);
    }
  }

  // Names the peers that did not answer, withdraws the receives (their buffers belong to the
  // caller, who is about to unwind), lets the sends finish in the background, and throws.
  [[noreturn]] void abandon(const char* op, Pending& p) {
    std::vector<int> missing;
    for (size_t i = 0; i < p.reqs.size(); ++i) {
      int done = 0;  // MPI_Testall leaves every request as it was unless all completed
      if (p.reqs[i] != MPI_REQUEST_NULL) MPI_Test(&p.reqs[i], &done, MPI_STATUS_IGNORE);
      if (p.reqs[i] == MPI_REQUEST_NULL || done) continue;
      if (missing.empty() || missing.back() != p.peers[i]) missing.push_back(p.peers[i]);
      if (p.receives[i]) {
        MPI_Cancel(&p.reqs[i]);
        MPI_Wait(&p.reqs[i], MPI_STATUS_IGNORE);
      } else {
        MPI_Request_free(&p.reqs[i]);
      }
    }
    std::sort(missing.begin(), missing.end());
    missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
    broken_ = fmt::format("{} timed out after {:g} s waiting for {}", op, timeout_.count(), list_ranks(missing));
    throw CollectiveError(fmt::format("{} on {} timed out after {:g} s waiting for {}", op, describe(*this), timeout_.count(),
                                      list_ranks(missing)));
  }

  std::vector<std::byte> receive(const char* op, int peer, int tag) {
    const auto start = Clock::now();
    const auto deadline = start + std::chrono::duration_cast<Clock::duration>(timeout_);
    for (int spins = 0;; ++spins) {
      int ready = 0;
      MPI_Status st;
      check(MPI_Iprobe(peer, tag, comm_, &ready, &st), op);
      if (ready) {
        int n = 0;
        MPI_Get_count(&st, MPI_BYTE, &n);
        std::vector<std::byte> data(static_cast<size_t>(n));
        check(MPI_Recv(data.data(), n, MPI_BYTE, peer, tag, comm_, MPI_STATUS_IGNORE), op);
        return data;
      }
      const auto now = Clock::now();
      if (now > deadline) {
        broken_ = fmt::format("{} timed out after {:g} s waiting for rank {}", op, timeout_.count(), peer);
        throw CollectiveError(fmt::format("{} on {} timed out after {:g} s waiting for rank {}", op, describe(*this),
                                          timeout_.count(), peer));
      }
      pause(spins, now - start);
    }
  }

  static void pause(int spins, Clock::duration waited) {
    if (spins < 2000) return;
    if (waited < std::chrono::milliseconds(100)) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(200));
  }

  MPI_Comm comm_;
  std::string name_;
  Seconds timeout_;
  int rank_ = 0, size_ = 1;
  std::string broken_;  // why, once an operation timed out
  std::list<std::unique_ptr<Posted>> posted_;  // buffered sends in flight, oldest first
};

}  // namespace

bool mpi_available() { return true; }

std::unique_ptr<ProcessGroup> mpi_world(Seconds timeout) {
  ensure_mpi();
  MPI_Comm world{};
  check(MPI_Comm_dup(MPI_COMM_WORLD, &world), "MPI_Comm_dup");
  return std::make_unique<MpiGroup>(world, "world", timeout);
}

void abort_launch(int code) {
  int ready = 0, done = 0;
  MPI_Initialized(&ready);
  MPI_Finalized(&done);
  if (ready && !done) MPI_Abort(MPI_COMM_WORLD, code);
}

}  // namespace xp::dist
