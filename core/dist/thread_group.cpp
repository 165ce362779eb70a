#include "core/dist/thread_group.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>

namespace xp::dist {

namespace {

using Clock = std::chrono::steady_clock;

// What the ranks of one world share: sub-groups made by split() are registered here, so the
// ranks that join the same one find it, and an abort reaches every group of the world.
struct World {
  std::mutex mu;
  std::condition_variable cv;
  std::string aborted;  // why, once a rank failed
  uint64_t groups = 0;  // ids handed out
  // (parent group id, the parent's split count, color) -> the sub-group.
  std::map<std::tuple<uint64_t, uint64_t, int>, std::shared_ptr<struct GroupState>> children;
};

// One group's meeting point: a two-phase barrier around each exchange (deposit, then everyone
// reads, then everyone leaves before the next deposit), and a mailbox per ordered pair.
struct GroupState {
  GroupState(World* w, int n, std::string nm)
      : world(w), id(world->groups++), size(n), name(std::move(nm)), slots(static_cast<size_t>(n)),
        arrived(static_cast<size_t>(n)) {}
  World* world;  // outlives its groups: run_threads holds it until every rank has returned
  uint64_t id;
  int size;
  std::string name;
  std::atomic<uint64_t> generation = 0;  // barriers passed (read without the lock while spinning)
  int count = 0;            // ranks at the current barrier
  std::vector<const void*> slots;
  std::vector<uint64_t> arrived;  // the generation each rank last reached
  std::map<std::pair<int, int>, std::deque<std::vector<std::byte>>> mail;  // (from, to)
};

class ThreadGroup final : public ProcessGroup {
 public:
  ThreadGroup(std::shared_ptr<GroupState> s, int rank, Seconds timeout) : s_(std::move(s)), rank_(rank), timeout_(timeout) {}
  int rank() const override { return rank_; }
  int size() const override { return s_->size; }
  std::string name() const override { return s_->name + " (threads)"; }
  Seconds timeout() const override { return timeout_; }

  void all_gather_bytes(std::span<const std::byte> in, std::span<std::byte> out) override {
    exchange("all_gather", in.data(), [&](const std::vector<const void*>& slots) {
      for (int r = 0; r < size(); ++r) std::memcpy(out.data() + static_cast<size_t>(r) * in.size(), slots[static_cast<size_t>(r)], in.size());
    });
  }

  void broadcast_bytes(std::vector<std::byte>& data, int root) override {
    exchange("broadcast", &data, [&](const std::vector<const void*>& slots) {
      if (rank_ != root) data = *static_cast<const std::vector<std::byte>*>(slots[static_cast<size_t>(root)]);
    });
  }

  void send_bytes(std::span<const std::byte> data, int peer) override {
    std::lock_guard lock(s_->world->mu);
    s_->mail[{rank_, peer}].emplace_back(data.begin(), data.end());
    s_->world->cv.notify_all();
  }

  std::vector<std::byte> recv_bytes(int peer) override {
    std::unique_lock lock(s_->world->mu);
    auto& box = s_->mail[{peer, rank_}];
    wait(lock, "recv", [&] { return !box.empty(); }, [&] { return std::vector<int>{peer}; });
    std::vector<std::byte> m = std::move(box.front());
    box.pop_front();
    return m;
  }

  std::unique_ptr<ProcessGroup> split(int color, const std::string& name, Seconds timeout) override {
    std::vector<int> colors = all_gather(std::span<const int>(&color, 1));
    int my_rank = 0, n = 0;
    for (int r = 0; r < size(); ++r)
      if (colors[static_cast<size_t>(r)] == color) {
        if (r == rank_) my_rank = n;
        ++n;
      }
    std::lock_guard lock(s_->world->mu);
    auto& child = s_->world->children[{s_->id, splits_++, color}];
    if (!child) child = std::make_shared<GroupState>(s_->world, n, name);
    return std::make_unique<ThreadGroup>(child, my_rank, timeout);
  }

  static void abort(World& w, const std::string& why) {
    std::lock_guard lock(w.mu);
    if (w.aborted.empty()) w.aborted = why;
    w.cv.notify_all();
  }

 private:
  // Waits on the world's condition until `ready`; throws when the world was aborted or the
  // timeout passes, naming the ranks `missing()` returns.
  template <class Ready, class Missing>
  void wait(std::unique_lock<std::mutex>& lock, const char* op, Ready ready, Missing missing) {
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout_);
    World& w = *s_->world;
    while (!ready()) {
      if (!w.aborted.empty())
        throw CollectiveError(fmt::format("{} on {}: abandoned, {}", op, describe(*this), w.aborted));
      if (w.cv.wait_until(lock, deadline) == std::cv_status::timeout && !ready() && w.aborted.empty())
        throw CollectiveError(fmt::format("{} on {} timed out after {:g} s waiting for {}", op, describe(*this),
                                          timeout_.count(), list_ranks(missing())));
    }
  }

  void barrier_locked(std::unique_lock<std::mutex>& lock, const char* op) {
    GroupState& s = *s_;
    const uint64_t gen = s.generation;
    s.arrived[static_cast<size_t>(rank_)] = gen + 1;
    if (++s.count == s.size) {
      s.count = 0;
      ++s.generation;
      s.world->cv.notify_all();
      return;
    }
    // Spin a little before sleeping: tensor-parallel ranks meet twice a layer, microseconds
    // apart, and a futex wake-up costs tens of microseconds — a tenth of a small decode's layer.
    // Bounded in time, not in turns: on a loaded machine each yield may give the core away for
    // milliseconds.
    lock.unlock();
    const auto spin_until = Clock::now() + std::chrono::microseconds(200);
    while (s.generation == gen && Clock::now() < spin_until) std::this_thread::yield();
    lock.lock();
    wait(lock, op, [&] { return s.generation != gen; }, [&] {
      std::vector<int> out;
      for (int r = 0; r < s.size; ++r)
        if (s.arrived[static_cast<size_t>(r)] <= gen) out.push_back(r);
      return out;
    });
  }

  template <class Read>
  void exchange(const char* op, const void* mine, Read read) {
    std::unique_lock lock(s_->world->mu);
    s_->slots[static_cast<size_t>(rank_)] = mine;
    barrier_locked(lock, op);
    const std::vector<const void*> slots = s_->slots;
    lock.unlock();
    read(slots);
    lock.lock();
    barrier_locked(lock, op);  // nobody deposits the next input while a peer still reads this one
  }

  std::shared_ptr<GroupState> s_;
  int rank_;
  Seconds timeout_;
  uint64_t splits_ = 0;  // split() calls so far: the same count on every rank
};

}  // namespace

void run_threads(int size, Seconds timeout, const std::function<void(ProcessGroup&)>& fn) {
  auto world = std::make_unique<World>();  // owns the sub-groups' states (no cycle through them)
  auto state = std::make_shared<GroupState>(world.get(), size, "world");
  std::vector<std::exception_ptr> errors(static_cast<size_t>(size));
  auto body = [&](int rank) {
    try {
      ThreadGroup g(state, rank, timeout);
      fn(g);
    } catch (const std::exception& e) {
      errors[static_cast<size_t>(rank)] = std::current_exception();
      ThreadGroup::abort(*world, fmt::format("rank {} failed: {}", rank, e.what()));
    } catch (...) {
      errors[static_cast<size_t>(rank)] = std::current_exception();
      ThreadGroup::abort(*world, fmt::format("rank {} failed", rank));
    }
  };
  std::vector<std::thread> threads;
  for (int r = 1; r < size; ++r) threads.emplace_back(body, r);
  body(0);
  for (auto& t : threads) t.join();
  // Rank 0's error, else the first rank's that failed for a reason of its own (not an abandoned
  // collective, which only echoes another rank's failure).
  if (errors[0]) std::rethrow_exception(errors[0]);
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace xp::dist
