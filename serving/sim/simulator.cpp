#include "serving/sim/simulator.h"

#include <deque>
#include <queue>
#include <unordered_map>

#include "core/runtime/check.h"
#include "serving/scheduler/replica_scheduler.h"
#include "serving/sim/global_scheduler.h"

namespace xp::serving {
namespace {

enum class EventKind { kArrival, kStageEnd };

struct Event {
  double time;
  uint64_t order;  // creation order: FIFO among equal times
  EventKind kind;
  int64_t replica = 0;
  int64_t stage = 0;
  uint64_t batch = 0;
  bool operator>(const Event& o) const { return time != o.time ? time > o.time : order > o.order; }
};

struct InFlight {
  Batch batch;
  std::vector<BatchShape> shapes;  // what each KV-parallel group runs (one group: the batch)
  std::vector<BatchShape> prompt_shapes;  // the same without the decodes (batches with both)
  int64_t stage = 0;  // the stage it runs on or waits for
  double start_s = 0;
  int64_t kv_used = 0;
  // Predicted once per batch: every stage but the last costs the same (the last adds the LM head).
  double inner_stage_s = 0, last_stage_s = 0, stage_flops = 0;
  double decode_s = 0;  // execution attributable to its decodes (SARATHI's decode throughput)
};

struct Replica {
  std::unique_ptr<ReplicaScheduler> scheduler;
  std::vector<bool> stage_busy;
  std::vector<std::deque<uint64_t>> stage_queue;
  std::unordered_map<uint64_t, InFlight> in_flight;
  // Per stage: time busy, in a bubble, idle (ServingMetrics::add_stage_time), up to accounted_s.
  std::vector<double> busy_s, bubble_s, idle_s;
  double accounted_s = 0;

  // Adds the time since the last call to each stage's state, which holds since then (called
  // before every change to this replica).
  void account(double now) {
    const double dt = now - accounted_s;
    accounted_s = now;
    if (dt <= 0) return;
    for (size_t s = 0; s < stage_busy.size(); ++s) {
      bool waiting = false;  // work this stage will run is elsewhere
      if (s == 0) waiting = scheduler->has_work();
      else
        for (const auto& [id, f] : in_flight) waiting |= f.stage < static_cast<int64_t>(s);
      (stage_busy[s] ? busy_s : waiting ? bubble_s : idle_s)[s] += dt;
    }
  }
};

}  // namespace

struct Simulator::Impl {
  ClusterConfig cluster;
  const StageTimer& predictor;
  int64_t gpus_per_replica;
  int64_t pp;
  RequestGenerator& requests;
  ServingMetrics& metrics;
  std::unique_ptr<GlobalScheduler> global;
  std::vector<Replica> replicas;
  std::vector<const ReplicaScheduler*> replica_schedulers;  // what the global scheduler sees
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  uint64_t next_order = 0;
  SimulationResult result;

  void push(Event e) {
    e.order = next_order++;
    events.push(e);
  }

  void schedule_next_arrival() {
    if (auto r = requests.next()) {
      pending_arrival = *r;
      push({r->arrival_s, 0, EventKind::kArrival});
    }
  }
  Request pending_arrival;

  void try_schedule(int64_t r, double now) {
    Replica& rep = replicas[static_cast<size_t>(r)];
    while (true) {
      Batch b = rep.scheduler->schedule(now);
      if (b.empty()) break;
      uint64_t id = b.id;
      InFlight f;
      f.shapes = rep.scheduler->group_shapes(b);
      if (b.num_decodes() > 0 && b.num_prefill_tokens() > 0) {
        Batch prompts = b;
        std::erase_if(prompts.items, [](const BatchItem& i) { return !i.is_prefill; });
        f.prompt_shapes = rep.scheduler->group_shapes(prompts);
      }
      f.kv_used = rep.scheduler->kv().num_used();
      f.batch = std::move(b);
      rep.in_flight.emplace(id, std::move(f));
      rep.stage_queue[0].push_back(id);
      try_start_stage(r, 0, now);
    }
  }

  // A stage's time: that of its slowest KV-parallel group (the groups run side by side).
  double stage_s(const std::vector<BatchShape>& shapes, int64_t stage) const {
    double t = 0;
    for (const auto& g : shapes)
      if (g.num_tokens() > 0) t = std::max(t, predictor.stage_time_s(g, stage));
    return t;
  }

  // SARATHI's accounting of decode cost: a decode-only batch's whole execution; in a hybrid batch,
  // what the decodes add to the same batch without them (piggybacked decodes cost little).
  double decode_share_s(const InFlight& f) const {
    if (f.batch.num_decodes() == 0) return 0;
    const auto execution_s = [this](double inner, double last) { return inner * static_cast<double>(pp - 1) + last; };
    const double whole = execution_s(f.inner_stage_s, f.last_stage_s);
    if (f.batch.num_prefill_tokens() == 0) return whole;
    const double last = stage_s(f.prompt_shapes, pp - 1);
    return std::max(0.0, whole - execution_s(pp > 1 ? stage_s(f.prompt_shapes, 0) : last, last));
  }

  void try_start_stage(int64_t r, int64_t s, double now) {
    Replica& rep = replicas[static_cast<size_t>(r)];
    auto us = static_cast<size_t>(s);
    if (rep.stage_busy[us] || rep.stage_queue[us].empty()) return;
    uint64_t id = rep.stage_queue[us].front();
    rep.stage_queue[us].pop_front();
    InFlight& f = rep.in_flight.at(id);
    if (s == 0) {
      f.start_s = now;
      f.last_stage_s = stage_s(f.shapes, pp - 1);
      f.inner_stage_s = pp > 1 ? stage_s(f.shapes, 0) : f.last_stage_s;
      f.stage_flops = 0;
      for (const auto& g : f.shapes) f.stage_flops += g.num_tokens() > 0 ? predictor.stage_flops(g) : 0;
      f.decode_s = decode_share_s(f);
    }
    double t = s == pp - 1 ? f.last_stage_s : f.inner_stage_s;
    metrics.on_stage_run(f.batch, r, s, now, now + t);
    metrics.add_busy(t * static_cast<double>(gpus_per_replica) / static_cast<double>(pp),
                     f.stage_flops * static_cast<double>(gpus_per_replica) / static_cast<double>(pp));
    rep.stage_busy[us] = true;
    push({now + t, 0, EventKind::kStageEnd, r, s, id});
  }

  void on_stage_end(const Event& e) {
    Replica& rep = replicas[static_cast<size_t>(e.replica)];
    rep.account(e.time);
    rep.stage_busy[static_cast<size_t>(e.stage)] = false;
    if (e.stage + 1 < pp) {
      InFlight& f = rep.in_flight.at(e.batch);  // valid until try_schedule adds a batch
      f.stage = e.stage + 1;
      rep.stage_queue[static_cast<size_t>(e.stage + 1)].push_back(e.batch);
      try_start_stage(e.replica, e.stage + 1, e.time);
      // SPP: a prompt whose chunk left stage 0 may send its next chunk now.
      rep.scheduler->on_stage_completed(f.batch, e.stage, e.time);
      if (e.stage == 0 && rep.scheduler->config().sequence_pipeline_parallel) try_schedule(e.replica, e.time);
    } else {
      auto node = rep.in_flight.extract(e.batch);
      InFlight& f = node.mapped();
      rep.scheduler->on_step_completed(f.batch, e.time);
      ++result.iterations;
      metrics.on_batch(f.batch, e.replica, f.start_s, e.time, f.kv_used, rep.scheduler->kv().num_total());
      metrics.add_decode_cost(f.batch.num_decodes(), f.decode_s);
      for (const Sequence& s : rep.scheduler->take_finished()) {
        metrics.on_finished(s, e.replica);
        ++result.requests_finished;
      }
      try_schedule(e.replica, e.time);
    }
    try_start_stage(e.replica, e.stage, e.time);
  }
};

Simulator::Simulator(const ClusterConfig& cluster, const SchedulerConfig& scheduler, const StageTimer& predictor,
                     int64_t kv_blocks_per_replica, int64_t gpus_per_replica, RequestGenerator& requests,
                     ServingMetrics& metrics, uint64_t seed, std::shared_ptr<const IterationTimeModel> time_model)
    : impl_(new Impl{cluster, predictor, gpus_per_replica, scheduler.pipeline_stages, requests, metrics,
                     make_global_scheduler(cluster.global_scheduler, seed), {}, {}, {}, 0, {}, {}}) {
  EXP_CHECK(cluster.num_replicas >= 1, "need at least one replica, got {}", cluster.num_replicas);
  for (int64_t i = 0; i < cluster.num_replicas; ++i) {
    Replica r;
    r.scheduler = ReplicaScheduler::create(scheduler, kv_blocks_per_replica);
    r.scheduler->set_time_model(time_model);
    r.stage_busy.assign(static_cast<size_t>(scheduler.pipeline_stages), false);
    r.stage_queue.resize(static_cast<size_t>(scheduler.pipeline_stages));
    r.busy_s.assign(static_cast<size_t>(scheduler.pipeline_stages), 0.0);
    r.bubble_s = r.idle_s = r.busy_s;
    impl_->replica_schedulers.push_back(r.scheduler.get());
    impl_->replicas.push_back(std::move(r));
  }
}

Simulator::~Simulator() = default;

SimulationResult Simulator::run(const std::function<bool()>& should_stop) {
  Impl& s = *impl_;
  s.schedule_next_arrival();
  while (!s.events.empty()) {
    if (should_stop && should_stop()) {
      s.result.stopped = true;
      break;
    }
    Event e = s.events.top();
    if (s.cluster.time_limit_s > 0 && e.time > s.cluster.time_limit_s) {
      s.result.stopped = true;
      break;
    }
    s.events.pop();
    s.result.simulated_s = e.time;
    if (e.kind == EventKind::kArrival) {
      Request r = s.pending_arrival;
      ++s.result.requests_arrived;
      int64_t replica = s.global->route(s.replica_schedulers);
      s.replicas[static_cast<size_t>(replica)].account(e.time);
      s.replicas[static_cast<size_t>(replica)].scheduler->add_request(r);
      s.schedule_next_arrival();  // before scheduling: same-time arrivals stay FIFO
      s.try_schedule(replica, e.time);
    } else {
      s.on_stage_end(e);
    }
  }
  for (size_t i = 0; i < s.replicas.size(); ++i) {
    Replica& r = s.replicas[i];
    s.result.preemptions += r.scheduler->num_preemptions();
    r.account(s.result.simulated_s);
    for (size_t st = 0; st < r.busy_s.size(); ++st)
      s.metrics.add_stage_time(static_cast<int64_t>(i), static_cast<int64_t>(st), r.busy_s[st], r.bubble_s[st], r.idle_s[st]);
  }
  return s.result;
}

}  // namespace xp::serving
