#!/usr/bin/env bash
# The main job end to end, on the packaged local models, offline: `make demo`.
# Trains a spam filter from two class descriptions and 50 unlabeled messages, shows a few
# predictions and the model's summary, then predicts a file with the saved model in a fresh process.
# EXAMPLES_PER_CLASS, OUT and PROMPTCLF can be set from the environment (the tests cut the run down).
set -euo pipefail
cd "$(dirname "$0")/.."
PROMPTCLF=${PROMPTCLF:-.venv/bin/promptclf}
OUT=${OUT:-build/demo}
EXAMPLES_PER_CLASS=${EXAMPLES_PER_CLASS:-auto}
mkdir -p "$OUT"
rm -f "$OUT/spam.clf" "$OUT/examples.jsonl"

echo "== 1. train from examples/demo/prompts.json + examples/demo/unlabeled.txt (local LLM and embedder)"
start=$(date +%s)
"$PROMPTCLF" train examples/demo/prompts.json -o "$OUT/spam.clf" \
  --unlabeled examples/demo/unlabeled.txt --examples-per-class "$EXAMPLES_PER_CLASS" --store "$OUT/examples.jsonl"
echo "   trained in $(( $(date +%s) - start )) s"

echo
echo "== 2. a few predictions (a fresh process loads $OUT/spam.clf: no LLM, no PyTorch)"
printf '%s\n' "Congratulations, you won a 1000 prize! Reply CLAIM now" "Can you call me when you get this?" \
  | "$PROMPTCLF" predict "$OUT/spam.clf" -

echo
echo "== 3. what is in the model"
"$PROMPTCLF" info "$OUT/spam.clf"

echo
echo "== 4. predict a file: examples/demo/inbox.txt -> $OUT/inbox.jsonl"
"$PROMPTCLF" predict "$OUT/spam.clf" examples/demo/inbox.txt > "$OUT/inbox.jsonl"
cat "$OUT/inbox.jsonl"
echo
echo "model: $OUT/spam.clf   generated examples: $OUT/examples.jsonl"
