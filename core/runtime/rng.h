// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11). A stream is a pure
// function of (seed, stream id, counter), so any draw can be reproduced without replaying the
// ones before it, and a checkpoint needs only the counter to resume bit for bit. Streams are
// cheap values; give each independent consumer (data order, init, dropout, a logical rank) its
// own stream id instead of sharing one generator. Not thread-safe: one stream per thread.
#pragma once
#include <array>
#include <cstdint>

namespace xp::runtime {

using Philox4x32Key = std::array<uint32_t, 2>;
using Philox4x32Ctr = std::array<uint32_t, 4>;

// One Philox4x32-10 block: 4 random 32-bit words for one (counter, key).
Philox4x32Ctr philox4x32_10(Philox4x32Ctr ctr, Philox4x32Key key);

class RngStream {
 public:
  RngStream(uint64_t seed, uint64_t stream_id);

  uint32_t next_u32();
  uint64_t next_u64();
  double uniform();                 // [0, 1), 53 random bits
  double normal();                  // standard normal (Box-Muller, no cached second value)
  uint64_t below(uint64_t n);       // uniform integer in [0, n), unbiased

  // Number of 32-bit words drawn so far: all that is needed to resume the stream exactly.
  uint64_t position() const;
  void seek(uint64_t position);

  uint64_t seed() const { return seed_; }
  uint64_t stream_id() const { return stream_id_; }

 private:
  uint64_t seed_, stream_id_;
  Philox4x32Key key_;
  uint64_t block_ = 0;   // counter words 0-1; stream id fills words 2-3
  uint32_t word_ = 4;    // next unused word in buf_ (4 = refill)
  Philox4x32Ctr buf_{};
  void refill();
};

}  // namespace xp::runtime
