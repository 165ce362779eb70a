// ByteWriter / ByteReader: the little-endian binary encoding of checkpoint payloads. Plain
// values and vectors of trivially copyable types, plus LEB128 varints and varint-sized byte blobs
// for compact streams; a reader that runs past the end throws CheckpointError instead of reading
// garbage. No versioning here: the checkpoint header has it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace xp::jobs {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ByteWriter {
 public:
  template <class T>
    requires std::is_trivially_copyable_v<T>
  void put(const T& v) {
    append(&v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    append(s.data(), s.size());
  }
  template <class T>
    requires std::is_trivially_copyable_v<T>
  void put_vector(const std::vector<T>& v) {
    put<uint64_t>(v.size());
    append(v.data(), v.size() * sizeof(T));
  }
  // Seven bits a byte, least significant first; the high bit says "more follows".
  void put_varint(uint64_t v) {
    uint8_t b[10];
    size_t n = 0;
    for (; v >= 0x80; v >>= 7) b[n++] = static_cast<uint8_t>(v | 0x80);
    b[n++] = static_cast<uint8_t>(v);
    append(b, n);
  }
  // A varint byte count, then the bytes.
  void put_blob(const std::vector<uint8_t>& v) {
    put_varint(v.size());
    append(v.data(), v.size());
  }
  const std::vector<std::byte>& bytes() const { return buf_; }
  std::vector<std::byte> take() { return std::move(buf_); }

 private:
  void append(const void* p, size_t n) {
    size_t old = buf_.size();
    buf_.resize(old + n);
    if (n) std::memcpy(buf_.data() + old, p, n);
  }
  std::vector<std::byte> buf_;
};

class ByteReader {
 public:
  ByteReader(const std::byte* data, size_t size) : data_(data), size_(size) {}
  explicit ByteReader(const std::vector<std::byte>& v) : ByteReader(v.data(), v.size()) {}

  template <class T>
    requires std::is_trivially_copyable_v<T>
  T get() {
    T v;
    copy(&v, sizeof(T));
    return v;
  }
  std::string get_string() {
    uint64_t n = get<uint64_t>();
    need(n);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  template <class T>
    requires std::is_trivially_copyable_v<T>
  std::vector<T> get_vector() {
    uint64_t n = get<uint64_t>();
    if (n > (size_ - pos_) / (sizeof(T) ? sizeof(T) : 1)) throw CheckpointError("checkpoint payload truncated");
    std::vector<T> v(n);
    copy(v.data(), n * sizeof(T));
    return v;
  }
  uint64_t get_varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const auto b = get<uint8_t>();
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    throw CheckpointError("checkpoint payload: varint longer than 64 bits (corrupt)");
  }
  std::vector<uint8_t> get_blob() {
    const uint64_t n = get_varint();
    need(n);
    std::vector<uint8_t> v(n);
    copy(v.data(), n);
    return v;
  }
  bool at_end() const { return pos_ == size_; }
  size_t remaining() const { return size_ - pos_; }

 private:
  void need(size_t n) const {
    if (n > size_ - pos_) throw CheckpointError("checkpoint payload truncated");
  }
  void copy(void* out, size_t n) {
    need(n);
    if (n) std::memcpy(out, data_ + pos_, n);
    pos_ += n;
  }
  const std::byte* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace xp::jobs
