#include "core/runtime/rng.h"

#include <cmath>
#include <numbers>

namespace xp::runtime {
namespace {

constexpr uint32_t kMul0 = 0xD2511F53, kMul1 = 0xCD9E8D57;
constexpr uint32_t kWeyl0 = 0x9E3779B9, kWeyl1 = 0xBB67AE85;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

}  // namespace

Philox4x32Ctr philox4x32_10(Philox4x32Ctr c, Philox4x32Key k) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kMul0, c[0], hi0, lo0);
    mulhilo(kMul1, c[2], hi1, lo1);
    c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
    k[0] += kWeyl0;
    k[1] += kWeyl1;
  }
  return c;
}

RngStream::RngStream(uint64_t seed, uint64_t stream_id)
    : seed_(seed),
      stream_id_(stream_id),
      key_{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)} {}

void RngStream::refill() {
  buf_ = philox4x32_10({static_cast<uint32_t>(block_), static_cast<uint32_t>(block_ >> 32),
                        static_cast<uint32_t>(stream_id_), static_cast<uint32_t>(stream_id_ >> 32)},
                       key_);
  ++block_;
  word_ = 0;
}

uint32_t RngStream::next_u32() {
  if (word_ == 4) refill();
  return buf_[word_++];
}

uint64_t RngStream::next_u64() {
  uint64_t hi = next_u32();
  return (hi << 32) | next_u32();
}

double RngStream::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double RngStream::normal() {
  double u1 = 1.0 - uniform();  // (0, 1]: log is finite
  double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

uint64_t RngStream::below(uint64_t n) {
  if (n <= 1) return 0;
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // reject the biased tail
  uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return x % n;
}

uint64_t RngStream::position() const {
  return word_ == 4 ? block_ * 4 : (block_ - 1) * 4 + word_;
}

void RngStream::seek(uint64_t position) {
  block_ = position / 4;
  word_ = 4;
  if (uint32_t word = static_cast<uint32_t>(position % 4); word != 0) {
    refill();  // loads the partly used block and advances block_ past it
    word_ = word;
  }
}

}  // namespace xp::runtime
