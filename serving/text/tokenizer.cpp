#include "serving/text/tokenizer.h"

#include <fmt/format.h>
#include <sentencepiece_processor.h>
#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <set>
#include <stdexcept>
#include <unordered_map>

namespace xp::serving {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

[[noreturn]] void fail(const fs::path& file, const std::string& why) {
  throw std::runtime_error(fmt::format("{}: {}", file.string(), why));
}

json read_json(const fs::path& file) {
  std::ifstream in(file);
  if (!in) fail(file, "cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    fail(file, e.what());
  }
}

// Byte length of the UTF-8 character starting with lead byte `c` (1 for a stray byte, which the
// reference also treats as one unit).
size_t utf8_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c >> 5) == 0x6) return 2;
  if ((c >> 4) == 0xE) return 3;
  if ((c >> 3) == 0x1E) return 4;
  return 1;
}

std::vector<std::string_view> utf8_chars(std::string_view s) {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < s.size();) {
    size_t n = std::min(utf8_len(static_cast<unsigned char>(s[i])), s.size() - i);
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

// Bytes to text with U+FFFD for what is not valid UTF-8 (Rust's from_utf8_lossy, through ICU).
std::string lossy_utf8(std::string_view bytes) {
  std::string out;
  icu::UnicodeString::fromUTF8(icu::StringPiece(bytes.data(), static_cast<int32_t>(bytes.size()))).toUTF8String(out);
  return out;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) s.replace(pos, from.size(), to);
}

// GPT-2's reversible map from bytes to printable characters, so that byte-level BPE works on text.
struct ByteLevelAlphabet {
  std::array<std::string, 256> of_byte;
  std::unordered_map<std::string, uint8_t> to_byte;
  ByteLevelAlphabet() {
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const UChar32 cp = printable ? b : 256 + extra++;
      std::string u;
      icu::UnicodeString(cp).toUTF8String(u);
      of_byte[b] = u;
      to_byte[u] = static_cast<uint8_t>(b);
    }
  }
};
const ByteLevelAlphabet& byte_level() {
  static const ByteLevelAlphabet a;
  return a;
}

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const std::string kMetaspace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

class Regex {
 public:
  Regex(const std::string& pattern, const fs::path& file) {
    UErrorCode status = U_ZERO_ERROR;
    UParseError pe;
    pattern_.reset(icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(pattern), pe, status));
    if (U_FAILURE(status)) fail(file, fmt::format("pre-tokenizer regex {:?} does not compile: {}", pattern, u_errorName(status)));
  }
  // Pieces of `s` in order: each match and each run between matches (Split's "Isolated"), or
  // only the runs between matches (`drop_matches`: "Removed").
  std::vector<std::string> split(const std::string& s, bool drop_matches = false) const {
    icu::UnicodeString u = icu::UnicodeString::fromUTF8(s);
    UErrorCode status = U_ZERO_ERROR;
    std::unique_ptr<icu::RegexMatcher> m(pattern_->matcher(u, status));
    std::vector<std::string> out;
    auto piece = [&](int32_t a, int32_t b) {
      if (b <= a) return;
      std::string t;
      u.tempSubStringBetween(a, b).toUTF8String(t);
      out.push_back(std::move(t));
    };
    int32_t last = 0;
    while (m->find(status) && U_SUCCESS(status)) {
      const int32_t a = m->start(status), b = m->end(status);
      if (b == a) continue;
      piece(last, a);
      if (!drop_matches) piece(a, b);
      last = b;
    }
    piece(last, u.length());
    return out;
  }

 private:
  std::unique_ptr<icu::RegexPattern> pattern_;
};

struct AddedToken {
  int32_t id;
  std::string content;
  bool special, lstrip, rstrip;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// ---- tokenizer.json ----------------------------------------------------------------------------

class HfTokenizer final : public Tokenizer {
 public:
  explicit HfTokenizer(const fs::path& file) : file_(file) {
    json j = read_json(file);
    load_model(j.at("model"));
    for (const json& t : j.value("added_tokens", json::array())) {
      AddedToken a{t.at("id").get<int32_t>(), t.at("content").get<std::string>(), t.value("special", false),
                   t.value("lstrip", false), t.value("rstrip", false)};
      token_of_id_[a.id] = a.content;
      id_of_token_[a.content] = a.id;
      if (a.special) special_.insert(a.id);
      added_.push_back(a);
    }
    // Longest first, so that "<|eot_id|>" wins over any token that is a prefix of it.
    std::sort(added_.begin(), added_.end(), [](const auto& a, const auto& b) { return a.content.size() > b.content.size(); });
    normalizer_ = j.value("normalizer", json());
    pre_tokenizer_ = j.value("pre_tokenizer", json());
    post_processor_ = j.value("post_processor", json());
    decoder_ = j.value("decoder", json());
    check_components(normalizer_, "normalizer", {"Sequence", "Prepend", "Replace", "NFC", "NFKC"});
    check_components(pre_tokenizer_, "pre_tokenizer", {"Sequence", "Split", "ByteLevel", "Metaspace"});
    check_components(post_processor_, "post_processor", {"Sequence", "TemplateProcessing", "ByteLevel"});
    check_components(decoder_, "decoder", {"Sequence", "Replace", "ByteFallback", "Fuse", "Strip", "ByteLevel", "Metaspace"});
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    std::vector<int32_t> ids;
    // Added tokens are cut out of the raw text first; each stretch between them is normalised,
    // pre-tokenised and run through the model on its own.
    size_t pos = 0;
    while (pos <= text.size()) {
      size_t best = std::string_view::npos;
      const AddedToken* hit = nullptr;
      for (const AddedToken& a : added_) {
        size_t f = text.find(a.content, pos);
        if (f < best) best = f, hit = &a;
      }
      size_t seg_end = hit ? best : text.size();
      size_t next = hit ? best + hit->content.size() : text.size() + 1;
      if (hit && hit->lstrip)
        while (seg_end > pos && is_space(text[seg_end - 1])) --seg_end;
      if (hit && hit->rstrip)
        while (next < text.size() && is_space(text[next])) ++next;
      encode_segment(std::string(text.substr(pos, seg_end - pos)), ids);
      if (!hit) break;
      ids.push_back(hit->id);
      pos = next;
    }
    if (add_special) post_process(post_processor_, ids);
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    std::vector<std::string> tokens;
    for (int32_t id : ids) {
      if (skip_special && special_.count(id)) continue;
      auto it = token_of_id_.find(id);
      if (it != token_of_id_.end()) tokens.push_back(it->second);
    }
    if (decoder_.is_null()) {
      std::string out;
      for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
      return out;
    }
    run_decoder(decoder_, tokens);
    std::string out;
    for (const std::string& t : tokens) out += t;
    return out;
  }

  int64_t vocab_size() const override {
    return token_of_id_.empty() ? 0 : static_cast<int64_t>(token_of_id_.rbegin()->first) + 1;
  }
  std::optional<int32_t> token_id(std::string_view token) const override {
    auto it = id_of_token_.find(std::string(token));
    return it == id_of_token_.end() ? std::nullopt : std::optional<int32_t>(it->second);
  }
  bool is_special(int32_t id) const override { return special_.count(id) > 0; }

 private:
  void check_components(const json& c, const std::string& where, const std::set<std::string>& known) const {
    if (c.is_null()) return;
    const std::string type = c.value("type", "");
    if (!known.count(type))
      fail(file_, fmt::format("{} type \"{}\" is not supported (supported: {})", where, type, fmt::join(known, ", ")));
    for (const char* list : {"normalizers", "pretokenizers", "processors", "decoders"})
      if (c.contains(list))
        for (const json& sub : c.at(list)) check_components(sub, where, known);
    if (type == "Split") {
      if (!c.at("pattern").contains("Regex") && !c.at("pattern").contains("String"))
        fail(file_, "Split pattern needs \"Regex\" or \"String\"");
      const std::string behavior = c.value("behavior", "Isolated");
      if ((behavior != "Isolated" && behavior != "Removed") || c.value("invert", false))
        fail(file_, fmt::format("Split behavior \"{}\" (invert {}) is not supported (Isolated or Removed)", behavior,
                                c.value("invert", false)));
    }
  }

  void load_model(const json& m) {
    if (m.value("type", "BPE") != "BPE") fail(file_, fmt::format("model type \"{}\" is not supported (BPE)", m.value("type", "")));
    if (!m.value("dropout", json()).is_null()) fail(file_, "BPE dropout is not supported");
    for (const auto& [tok, id] : m.at("vocab").items()) {
      vocab_[tok] = id.get<int32_t>();
      token_of_id_[id.get<int32_t>()] = tok;
      id_of_token_[tok] = id.get<int32_t>();
    }
    byte_fallback_ = m.value("byte_fallback", false);
    ignore_merges_ = m.value("ignore_merges", false);
    fuse_unk_ = m.value("fuse_unk", false);
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      auto it = vocab_.find(m["unk_token"].get<std::string>());
      if (it == vocab_.end()) fail(file_, "model.unk_token is not in the vocabulary");
      unk_ = it->second;
    }
    int32_t rank = 0;
    for (const json& mg : m.at("merges")) {
      std::string a, b;
      if (mg.is_string()) {
        const std::string s = mg.get<std::string>();
        const size_t sp = s.find(' ', 1);
        if (sp == std::string::npos) fail(file_, fmt::format("merge {:?} is not \"A B\"", s));
        a = s.substr(0, sp), b = s.substr(sp + 1);
      } else {
        a = mg.at(0).get<std::string>(), b = mg.at(1).get<std::string>();
      }
      auto ia = vocab_.find(a), ib = vocab_.find(b), ic = vocab_.find(a + b);
      if (ia == vocab_.end() || ib == vocab_.end() || ic == vocab_.end())
        fail(file_, fmt::format("merge {:?} + {:?} names a token outside the vocabulary", a, b));
      merges_.emplace(pair_key(ia->second, ib->second), std::make_pair(rank++, ic->second));
    }
  }

  static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

  // ---- normalise, pre-tokenise, model ----
  void normalize(const json& n, std::string& s) const {
    if (n.is_null() || s.empty()) return;
    const std::string type = n.at("type");
    if (type == "Sequence") {
      for (const json& sub : n.at("normalizers")) normalize(sub, s);
    } else if (type == "Prepend") {
      s = n.at("prepend").get<std::string>() + s;
    } else if (type == "Replace") {
      replace_all(s, n.at("pattern").at("String").get<std::string>(), n.at("content").get<std::string>());
    } else {  // NFC / NFKC
      UErrorCode st = U_ZERO_ERROR;
      const icu::Normalizer2* norm =
          type == "NFC" ? icu::Normalizer2::getNFCInstance(st) : icu::Normalizer2::getNFKCInstance(st);
      icu::UnicodeString out = norm->normalize(icu::UnicodeString::fromUTF8(s), st);
      s.clear();
      out.toUTF8String(s);
    }
  }

  const Regex& regex(const std::string& pattern) const {
    std::lock_guard lock(regex_mu_);
    auto it = regexes_.find(pattern);
    if (it == regexes_.end()) it = regexes_.emplace(pattern, std::make_unique<Regex>(pattern, file_)).first;
    return *it->second;
  }

  // Splits every piece; `first` is true for the piece that starts the segment.
  void pre_tokenize(const json& p, std::vector<std::string>& pieces) const {
    if (p.is_null()) return;
    const std::string type = p.at("type");
    if (type == "Sequence") {
      for (const json& sub : p.at("pretokenizers")) pre_tokenize(sub, pieces);
      return;
    }
    std::vector<std::string> out;
    for (size_t i = 0; i < pieces.size(); ++i) {
      std::string s = pieces[i];
      if (type == "Split") {
        const json& pat = p.at("pattern");
        std::string re = pat.contains("Regex") ? pat["Regex"].get<std::string>()
                                               : "\\Q" + pat["String"].get<std::string>() + "\\E";
        for (std::string& t : regex(re).split(s, p.value("behavior", "Isolated") == "Removed")) out.push_back(std::move(t));
      } else if (type == "ByteLevel") {
        if (p.value("add_prefix_space", false) && (s.empty() || s[0] != ' ')) s = " " + s;
        std::vector<std::string> parts = p.value("use_regex", true) ? regex(kGpt2Pattern).split(s) : std::vector{s};
        for (const std::string& part : parts) {
          std::string mapped;
          for (unsigned char c : part) mapped += byte_level().of_byte[c];
          out.push_back(std::move(mapped));
        }
      } else {  // Metaspace
        const std::string rep = p.value("replacement", kMetaspace);
        const std::string scheme = p.value("prepend_scheme", p.value("add_prefix_space", true) ? "always" : "never");
        replace_all(s, " ", rep);
        if ((scheme == "always" || (scheme == "first" && i == 0)) && s.rfind(rep, 0) != 0) s = rep + s;
        if (!p.value("split", true)) {
          out.push_back(std::move(s));
          continue;
        }
        size_t start = 0;  // each word keeps the ▁ in front of it
        for (size_t f = s.find(rep, 1); f != std::string::npos; f = s.find(rep, f + rep.size())) {
          out.push_back(s.substr(start, f - start));
          start = f;
        }
        out.push_back(s.substr(start));
      }
    }
    pieces = std::move(out);
  }

  void encode_segment(std::string s, std::vector<int32_t>& ids) const {
    normalize(normalizer_, s);
    if (s.empty()) return;
    std::vector<std::string> pieces{std::move(s)};
    pre_tokenize(pre_tokenizer_, pieces);
    for (const std::string& w : pieces) bpe(w, ids);
  }

  // Byte-pair merges, lowest rank first and leftmost among equals, as the reference's queue does.
  void bpe(const std::string& word, std::vector<int32_t>& ids) const {
    if (word.empty()) return;
    if (ignore_merges_) {
      auto it = vocab_.find(word);
      if (it != vocab_.end()) return ids.push_back(it->second);
    }
    struct Sym {
      int32_t id;
      int prev, next;
      bool alive = true;
    };
    std::vector<Sym> syms;
    auto push = [&](int32_t id) {
      const int n = static_cast<int>(syms.size());
      syms.push_back({id, n - 1, n + 1});
    };
    for (std::string_view ch : utf8_chars(word)) {
      auto it = vocab_.find(std::string(ch));
      if (it != vocab_.end()) {
        push(it->second);
        continue;
      }
      bool done = false;
      if (byte_fallback_) {
        std::vector<int32_t> bytes;
        for (unsigned char c : ch) {
          auto b = vocab_.find(fmt::format("<0x{:02X}>", c));
          if (b == vocab_.end()) break;
          bytes.push_back(b->second);
        }
        if (bytes.size() == ch.size()) {
          for (int32_t b : bytes) push(b);
          done = true;
        }
      }
      if (done) continue;
      if (!unk_) fail(file_, fmt::format("character {:?} is not in the vocabulary and the model has no unk_token", ch));
      if (fuse_unk_ && !syms.empty() && syms.back().id == *unk_) continue;
      push(*unk_);
    }
    if (!syms.empty()) syms.back().next = -1;
    struct Cand {
      int32_t rank;
      int pos;
      int32_t new_id;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<>> q;
    auto consider = [&](int left) {
      if (left < 0 || syms[left].next < 0) return;
      auto it = merges_.find(pair_key(syms[left].id, syms[syms[left].next].id));
      if (it != merges_.end()) q.push({it->second.first, left, it->second.second});
    };
    for (int i = 0; i + 1 < static_cast<int>(syms.size()); ++i) consider(i);
    while (!q.empty()) {
      Cand c = q.top();
      q.pop();
      Sym& l = syms[c.pos];
      if (!l.alive || l.next < 0) continue;
      auto it = merges_.find(pair_key(l.id, syms[l.next].id));
      if (it == merges_.end() || it->second.second != c.new_id) continue;  // stale: the pair changed
      Sym& r = syms[l.next];
      l.id = c.new_id;
      r.alive = false;
      l.next = r.next;
      if (r.next >= 0) syms[r.next].prev = c.pos;
      consider(l.prev);
      consider(c.pos);
    }
    for (int i = 0; i >= 0 && i < static_cast<int>(syms.size()); i = syms[i].next) ids.push_back(syms[i].id);
  }

  void post_process(const json& p, std::vector<int32_t>& ids) const {
    if (p.is_null()) return;
    const std::string type = p.at("type");
    if (type == "Sequence") {
      for (const json& sub : p.at("processors")) post_process(sub, ids);
    } else if (type == "TemplateProcessing") {
      std::vector<int32_t> out;
      for (const json& part : p.at("single")) {
        if (part.contains("Sequence")) {
          out.insert(out.end(), ids.begin(), ids.end());
        } else {
          const json& st = p.at("special_tokens").at(part.at("SpecialToken").at("id").get<std::string>());
          for (const json& id : st.at("ids")) out.push_back(id.get<int32_t>());
        }
      }
      ids = std::move(out);
    }  // ByteLevel: offsets only
  }

  void run_decoder(const json& d, std::vector<std::string>& toks) const {
    const std::string type = d.at("type");
    if (type == "Sequence") {
      for (const json& sub : d.at("decoders")) run_decoder(sub, toks);
    } else if (type == "Replace") {
      for (std::string& t : toks) replace_all(t, d.at("pattern").at("String").get<std::string>(), d.at("content").get<std::string>());
    } else if (type == "ByteFallback") {
      std::vector<std::string> out;
      std::string bytes;
      size_t pending = 0;
      auto flush = [&] {
        if (!pending) return;
        if (valid_utf8(bytes)) out.push_back(bytes);
        else for (size_t i = 0; i < pending; ++i) out.push_back("\xEF\xBF\xBD");
        bytes.clear(), pending = 0;
      };
      for (std::string& t : toks) {
        if (t.size() == 6 && t.rfind("<0x", 0) == 0 && t[5] == '>') {
          bytes.push_back(static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
          ++pending;
        } else {
          flush();
          out.push_back(std::move(t));
        }
      }
      flush();
      toks = std::move(out);
    } else if (type == "Fuse") {
      std::string all;
      for (const std::string& t : toks) all += t;
      toks = {all};
    } else if (type == "Strip") {
      const std::string c = d.at("content");
      for (std::string& t : toks) {
        for (int k = 0; k < d.value("start", 0) && t.rfind(c, 0) == 0; ++k) t.erase(0, c.size());
        for (int k = 0; k < d.value("stop", 0) && t.size() >= c.size() && t.compare(t.size() - c.size(), c.size(), c) == 0; ++k)
          t.erase(t.size() - c.size());
      }
    } else if (type == "ByteLevel") {
      std::string bytes;
      for (const std::string& t : toks) {
        std::string raw;
        bool all_mapped = true;
        for (std::string_view ch : utf8_chars(t)) {
          auto it = byte_level().to_byte.find(std::string(ch));
          if (it == byte_level().to_byte.end()) {
            all_mapped = false;
            break;
          }
          raw.push_back(static_cast<char>(it->second));
        }
        bytes += all_mapped ? raw : t;
      }
      toks = {lossy_utf8(bytes)};
    } else {  // Metaspace
      const std::string rep = d.value("replacement", kMetaspace);
      const bool strip_first = d.value("prepend_scheme", d.value("add_prefix_space", true) ? "always" : "never") != "never";
      for (size_t i = 0; i < toks.size(); ++i) {
        replace_all(toks[i], rep, " ");
        if (i == 0 && strip_first && !toks[i].empty() && toks[i][0] == ' ') toks[i].erase(0, 1);
      }
    }
  }

  fs::path file_;
  std::unordered_map<std::string, int32_t> vocab_;
  std::map<int32_t, std::string> token_of_id_;  // model and added tokens
  std::unordered_map<std::string, int32_t> id_of_token_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (a, b) -> (rank, merged id)
  std::vector<AddedToken> added_;
  std::set<int32_t> special_;
  std::optional<int32_t> unk_;
  bool byte_fallback_ = false, ignore_merges_ = false, fuse_unk_ = false;
  json normalizer_, pre_tokenizer_, post_processor_, decoder_;
  mutable std::map<std::string, std::unique_ptr<Regex>> regexes_;  // compiled on first use
  mutable std::mutex regex_mu_;
};

// ---- tokenizer.model ---------------------------------------------------------------------------

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const fs::path& file) {
    auto st = sp_.Load(file.string());
    if (!st.ok()) fail(file, fmt::format("not a SentencePiece model: {}", st.ToString()));
    if (sp_.bos_id() >= 0) bos_ = sp_.bos_id();
    if (sp_.eos_id() >= 0) eos_ = sp_.eos_id();
  }
  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    std::vector<int> ids;
    sp_.Encode(text, &ids).IgnoreError();
    std::vector<int32_t> out;
    if (add_special && add_bos_ && bos_) out.push_back(*bos_);
    out.insert(out.end(), ids.begin(), ids.end());
    return out;
  }
  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    std::vector<int> keep;
    for (int32_t id : ids)
      if (!(skip_special && is_special(id)) && id >= 0 && id < sp_.GetPieceSize()) keep.push_back(id);
    std::string out;
    sp_.Decode(keep, &out).IgnoreError();
    return out;
  }
  int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  std::optional<int32_t> token_id(std::string_view token) const override {
    const int id = sp_.PieceToId(token);
    return id == sp_.unk_id() && token != sp_.IdToPiece(id) ? std::nullopt : std::optional<int32_t>(id);
  }
  bool is_special(int32_t id) const override { return sp_.IsControl(id) || sp_.IsUnknown(id); }

  bool add_bos_ = true;

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = utf8_len(c);
    if (n == 1 && c >= 0x80) return false;
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

void apply_tokenizer_config(Tokenizer& t, const fs::path& config) {
  if (!fs::exists(config)) return;
  json c = read_json(config);
  auto id_of = [&](const char* key) -> std::optional<int32_t> {
    if (!c.contains(key) || c[key].is_null()) return std::nullopt;
    const json& v = c[key];
    const std::string name = v.is_object() ? v.value("content", "") : v.get<std::string>();
    auto id = t.token_id(name);
    if (!id) fail(config, fmt::format("{} {:?} is not a token of the tokenizer", key, name));
    return id;
  };
  if (auto b = id_of("bos_token")) t.bos_ = b;
  if (auto e = id_of("eos_token")) t.eos_ = e;
  if (auto* sp = dynamic_cast<SentencePieceTokenizer*>(&t)) sp->add_bos_ = c.value("add_bos_token", true);
}

std::unique_ptr<Tokenizer> Tokenizer::from_tokenizer_json(const fs::path& file) { return std::make_unique<HfTokenizer>(file); }
std::unique_ptr<Tokenizer> Tokenizer::from_sentencepiece(const fs::path& file) {
  return std::make_unique<SentencePieceTokenizer>(file);
}

std::unique_ptr<Tokenizer> Tokenizer::from_dir(const fs::path& dir) {
  std::unique_ptr<Tokenizer> t;
  if (fs::exists(dir / "tokenizer.json")) t = from_tokenizer_json(dir / "tokenizer.json");
  else if (fs::exists(dir / "tokenizer.model")) t = from_sentencepiece(dir / "tokenizer.model");
  else fail(dir, "has no tokenizer.json or tokenizer.model (copy the checkpoint's tokenizer files beside its weights)");
  apply_tokenizer_config(*t, dir / "tokenizer_config.json");
  return t;
}

StreamDecoder::StreamDecoder(const Tokenizer& tok, std::vector<int32_t> prompt, bool skip_special)
    : tok_(tok), ids_(std::move(prompt)), skip_special_(skip_special) {
  // A few prompt tokens of context, so that the first output's leading space is decoded as the
  // full text would have it (SentencePiece decoders strip a space at the very start).
  read_ = ids_.size();
  prefix_ = read_ > 5 ? read_ - 5 : 0;
}

std::string StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  const std::string before = tok_.decode({ids_.begin() + prefix_, ids_.begin() + read_}, skip_special_);
  const std::string now = tok_.decode({ids_.begin() + prefix_, ids_.end()}, skip_special_);
  // Held back while the text ends in an unfinished character (decoded as U+FFFD).
  if (now.size() <= before.size() || now.compare(0, before.size(), before) != 0 ||
      (now.size() >= 3 && now.compare(now.size() - 3, 3, "\xEF\xBF\xBD") == 0))
    return "";
  prefix_ = read_;
  read_ = ids_.size();
  return now.substr(before.size());
}

std::string StreamDecoder::flush() {
  const std::string before = tok_.decode({ids_.begin() + prefix_, ids_.begin() + read_}, skip_special_);
  const std::string now = tok_.decode({ids_.begin() + prefix_, ids_.end()}, skip_special_);
  prefix_ = read_ = ids_.size();
  return now.size() > before.size() && now.compare(0, before.size(), before) == 0 ? now.substr(before.size()) : "";
}

std::string render_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages) {
  std::string out;
  if (tok.token_id("<|start_header_id|>")) {  // Llama-3
    out = "<|begin_of_text|>";
    for (const ChatMessage& m : messages)
      out += fmt::format("<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>", m.role, m.content);
    return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
  }
  if (tok.bos_id() && tok.eos_id() && tok.token_id("<s>")) {  // Llama-2 / Mistral [INST]; BOS comes from encode()
    std::string system;
    bool first = true;
    for (const ChatMessage& m : messages) {
      if (m.role == "system") {
        system = fmt::format("<<SYS>>\n{}\n<</SYS>>\n\n", m.content);
      } else if (m.role == "user") {
        out += fmt::format("{}[INST] {}{} [/INST]", first ? "" : "<s>", std::exchange(system, ""), m.content);
        first = false;
      } else {
        out += fmt::format(" {} </s>", m.content);
      }
    }
    return out;
  }
  for (const ChatMessage& m : messages) out += fmt::format("{}: {}\n", m.role, m.content);
  return out + "assistant:";
}

}  // namespace xp::serving
