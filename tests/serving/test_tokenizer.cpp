// Our tokenizer against Hugging Face's `tokenizers` library on the checkpoints' own files.
// The reference ids come from scripts/tokenizer_reference.sh (the CTest fixture
// tokenizer_reference installs the npm packages and runs it into the build tree).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include <sentencepiece_trainer.h>

#include "serving/text/tokenizer.h"

namespace xp::serving {
namespace {

namespace fs = std::filesystem;
const fs::path kRef = fs::path(EXP_BINARY_DIR) / "tokenizer_reference";

// The reference cases for one tokenizer (a copy: iterating a temporary's member would dangle).
nlohmann::json reference(const std::string& name) {
  std::ifstream in(kRef / "reference.json");
  if (!in) throw std::runtime_error("no " + (kRef / "reference.json").string() + ": run the tokenizer_reference fixture");
  return nlohmann::json::parse(in).at(name);
}

// Each checkpoint's tokenizer loaded once (Llama-3's 280k merges take a while, longer under ASan).
const Tokenizer& loaded(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& t = cache[name];
  if (!t) t = Tokenizer::from_dir(kRef / name);
  return *t;
}

class TokenizerReference : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerReference, IdsEqualTheReferenceLibrary) {
  const Tokenizer* tok = &loaded(GetParam());
  const nlohmann::json cases = reference(GetParam());
  ASSERT_EQ(cases.size(), 15u);
  for (const auto& c : cases) {
    const std::string text = c["text"];
    EXPECT_EQ(tok->encode(text, true), c["ids"].get<std::vector<int32_t>>()) << text;
    EXPECT_EQ(tok->encode(text, false), c["plain"].get<std::vector<int32_t>>()) << text;
  }
}

TEST_P(TokenizerReference, DecodeEqualsTheReferenceAndRoundTrips) {
  const Tokenizer* tok = &loaded(GetParam());
  const nlohmann::json cases = reference(GetParam());
  for (const auto& c : cases) {
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok->decode(ids, false), c["decoded"].get<std::string>());
    EXPECT_EQ(tok->decode(ids, true), c["decoded_skip"].get<std::string>());
    // Round trip: the text back, but for what the tokenizer itself normalises away (Llama-2's
    // tokens drop the leading space the prefix added; special tokens come back as written).
    const std::string text = c["text"];
    if (text.find('<') == std::string::npos) {
      EXPECT_EQ(tok->decode(tok->encode(text, false), true), text);
    }
  }
}

TEST_P(TokenizerReference, StreamingNeverEmitsBrokenUtf8AndAddsUpToTheText) {
  const Tokenizer* tok = &loaded(GetParam());
  const std::vector<int32_t> prompt = tok->encode("Answer:", true);
  const nlohmann::json cases = reference(GetParam());
  for (const auto& c : cases) {
    const auto out = c["plain"].get<std::vector<int32_t>>();
    StreamDecoder stream(*tok, prompt);
    std::string streamed;
    for (int32_t id : out) {
      std::string piece = stream.push(id);
      EXPECT_TRUE(valid_utf8(piece)) << "a piece cut a character: " << c["text"];
      streamed += piece;
    }
    streamed += stream.flush();
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), out.begin(), out.end());
    EXPECT_EQ(streamed, tok->decode(all, true).substr(tok->decode(prompt, true).size())) << c["text"];
  }
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, TokenizerReference, ::testing::Values("llama2", "llama3"));

TEST(Tokenizer, ReadsBosAndEosFromTheCheckpointsConfig) {
  const Tokenizer* l2 = &loaded("llama2");
  EXPECT_EQ(l2->bos_id(), 1);
  EXPECT_EQ(l2->eos_id(), 2);
  const Tokenizer* l3 = &loaded("llama3");
  EXPECT_EQ(l3->bos_id(), 128000);
  EXPECT_EQ(l3->eos_id(), 128001);
  EXPECT_TRUE(l3->is_special(128009));
  EXPECT_FALSE(l3->is_special(9906));
}

TEST(Tokenizer, ChatUsesTheCheckpointsFormat) {
  const Tokenizer* l3 = &loaded("llama3");
  const std::string chat = render_chat(*l3, {{"system", "Be brief."}, {"user", "Hi"}});
  EXPECT_EQ(chat,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  const auto ids = l3->encode(chat, true);
  EXPECT_EQ(ids.front(), 128000);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *l3->token_id("<|eot_id|>")), 2);
  const Tokenizer* l2 = &loaded("llama2");
  EXPECT_EQ(render_chat(*l2, {{"system", "S"}, {"user", "Hi"}, {"assistant", "Yo"}, {"user", "Bye"}}),
            "[INST] <<SYS>>\nS\n<</SYS>>\n\nHi [/INST] Yo </s><s>[INST] Bye [/INST]");
}

// tokenizer.model: a SentencePiece model (trained here on the test texts, so nothing is
// downloaded) read through libsentencepiece, with BOS added as tokenizer_config.json says.
TEST(Tokenizer, ReadsASentencePieceModel) {
  const fs::path dir = fs::temp_directory_path() / "exp_tokenizer_sentencepiece";
  fs::create_directories(dir);
  {
    std::ofstream corpus(dir / "corpus.txt");
    const nlohmann::json cases = reference("llama2");
    for (const auto& c : cases) corpus << c["text"].get<std::string>() << "\n";
  }
  const auto trained = sentencepiece::SentencePieceTrainer::Train("--input=" + (dir / "corpus.txt").string() + " --model_prefix=" +
                                                          (dir / "tokenizer").string() +
                                                          " --vocab_size=500 --model_type=bpe --byte_fallback=true "
                                                          "--character_coverage=0.98 --minloglevel=2");
  ASSERT_TRUE(trained.ok()) << trained.ToString();
  auto tok = Tokenizer::from_dir(dir);
  const std::string text = "Hello world! 日本語 🤗";
  const auto ids = tok->encode(text, true);
  EXPECT_EQ(ids.front(), *tok->bos_id());
  EXPECT_EQ(tok->decode(ids, true), text);
  std::ofstream(dir / "tokenizer_config.json") << R"({"add_bos_token": false})";
  EXPECT_NE(Tokenizer::from_dir(dir)->encode(text, true).front(), *tok->bos_id());
  fs::remove_all(dir);
}

TEST(Tokenizer, UnsupportedComponentIsNamed) {
  const fs::path dir = fs::temp_directory_path() / "exp_tokenizer_unsupported";
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "Unigram", "vocab": []}})";
  try {
    Tokenizer::from_dir(dir);
    FAIL() << "a Unigram model was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Unigram"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Tokenizer, MissingFilesAreNamed) {
  EXPECT_THROW(Tokenizer::from_dir(fs::temp_directory_path() / "exp_no_such_checkpoint"), std::runtime_error);
}

}  // namespace
}  // namespace xp::serving
