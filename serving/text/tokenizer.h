// Text in and out of the engine: a checkpoint's tokenizer, read from the files a Hugging Face
// checkpoint carries (docs/serving_text.md).
//
//   tokenizer.json   the `tokenizers` library's own format. We implement the pieces Llama-2/3,
//                    Mistral and GPT-2 style checkpoints use: BPE (byte-level, or SentencePiece
//                    style with byte fallback), the Prepend/Replace/NFC/NFKC normalizers, the
//                    Split(regex)/ByteLevel/Metaspace pre-tokenizers, TemplateProcessing and
//                    ByteLevel post-processors, and the matching decoders. Any other component is
//                    an error naming it, never a silent difference from the reference library.
//   tokenizer.model  a SentencePiece model, through libsentencepiece.
//
// Unicode regexes (the pre-tokenizer's \p{L}, look-ahead) run on ICU.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xp::serving {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // tokenizer.json if `dir` has one, else tokenizer.model; throws std::runtime_error naming the
  // file (and the component it cannot read) otherwise. tokenizer_config.json, when present, adds
  // add_bos_token / add_eos_token and the names of BOS and EOS.
  static std::unique_ptr<Tokenizer> from_dir(const std::filesystem::path& dir);
  static std::unique_ptr<Tokenizer> from_tokenizer_json(const std::filesystem::path& file);
  static std::unique_ptr<Tokenizer> from_sentencepiece(const std::filesystem::path& file);

  // `add_special`: what the checkpoint adds around one sequence (BOS for Llama-2). Special tokens
  // written in `text` ("<|eot_id|>") are recognised as themselves, as the reference library does.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special = true) const = 0;
  // Invalid UTF-8 (a cut multi-byte character) decodes to U+FFFD, as the reference does.
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;
  virtual int64_t vocab_size() const = 0;  // including added tokens
  virtual std::optional<int32_t> token_id(std::string_view token) const = 0;
  virtual bool is_special(int32_t id) const = 0;

  std::optional<int32_t> bos_id() const { return bos_; }
  std::optional<int32_t> eos_id() const { return eos_; }

 protected:
  std::optional<int32_t> bos_, eos_;
  friend void apply_tokenizer_config(Tokenizer& t, const std::filesystem::path& config);
};

// Streaming detokenisation: feed the ids one at a time, get text only once it is whole UTF-8 (a
// character split across byte tokens waits for its last byte). The concatenated pieces equal
// decode() of all the ids. Keeps a short window, as vLLM's and TGI's incremental decoders do.
class StreamDecoder {
 public:
  StreamDecoder(const Tokenizer& tok, std::vector<int32_t> prompt, bool skip_special = true);
  std::string push(int32_t id);  // "" while the text so far ends in an incomplete character
  std::string flush();           // whatever is held back at the end of the stream

 private:
  const Tokenizer& tok_;
  std::vector<int32_t> ids_;
  size_t prefix_ = 0, read_ = 0;
  bool skip_special_;
};

// A chat conversation rendered the way the checkpoint was trained on it. Not a Jinja interpreter:
// the Llama-3 header format and the Llama-2 [INST] format, chosen by the tokenizer's special
// tokens, and a plain "role: content" fallback.
struct ChatMessage {
  std::string role, content;
};
std::string render_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages);

// True when `s` is valid UTF-8 (what a streamed piece must always be).
bool valid_utf8(std::string_view s);

}  // namespace xp::serving
