# Sourced by the scripts that run `exp serve` (bench/serve_overhead.sh, scripts/reproduce_live_loop.sh).
# Expects $exp (the binary); run from the repository root.

# make_text_model DIR OVERRIDES...: a random-weight Llama in DIR with the Mistral/Llama-2
# tokenizer beside it (vocabulary 32,000), which `exp serve` needs to take text.
make_text_model() {
  local dir=$1; shift
  local ref=build/tokenizer_reference
  [ -f $ref/reference.json ] || scripts/tokenizer_reference.sh $ref tests/serving/data/tokenizer_texts.json >/dev/null
  "$exp" run configs/experiment/make_model.yaml output_dir="$dir" hydra.run.dir="$dir.make" "$@" > /dev/null
  cp $ref/llama2/tokenizer.json $ref/llama2/tokenizer_config.json "$dir/"
}

# start_exp_serve MODEL_DIR LOG OVERRIDES...: `exp serve` on a free loopback port in the
# background; sets $server (its pid, for the caller's trap) and $port.
start_exp_serve() {
  local model=$1 log=$2; shift 2
  "$exp" serve model_dir="$model" port=0 "$@" > "$log" 2>&1 &
  server=$!
  for _ in $(seq 100); do grep -q "/v1" "$log" 2>/dev/null && break; sleep 0.1; done
  port=$(grep -o "127.0.0.1:[0-9]*" "$log" | cut -d: -f2)
  [ -n "$port" ] || { echo "exp serve did not start:" >&2; cat "$log" >&2; exit 1; }
}
