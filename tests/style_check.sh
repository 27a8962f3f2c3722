#!/usr/bin/env bash
# Structural rules of the code base (docs/style in ../shared/docs/style.md), run as a test:
#  1. dependencies point one way (the table below): each stage includes only the stages listed
#     for it; tune/, alloc/, export/ and eval/ are siblings that share what lies below them
#     (the plan, the quantized block, the block description) and never include each other;
#  2. the library never calls exit() (errors are exceptions; only cli/ decides exit codes), never
#     includes cli/, and its messages name fields, not --flags;
#  3. nobody includes <torch/torch.h> (use common/torch.h: a third of the compile time);
#  4. no function body longer than 150 lines (top-level "{ ... }" blocks, column 0).
set -u
cd "$(dirname "$0")/.."
fail=0
below="common quant/formats io tokenizer model quant"   # the stack under the sibling stages
layers=(
  "common|common"
  "quant/formats|common quant/formats"
  "io|common quant/formats io"
  "tokenizer|common quant/formats io tokenizer"
  "model|common quant/formats io tokenizer model"
  "quant|$below"
  "tune|$below tune"
  "alloc|$below alloc"
  "export|$below export"
  "eval|$below eval"
  "cli|$below tune alloc export eval cli"
)
for row in "${layers[@]}"; do
  stage=${row%%|*}; ok=" ${row#*|} "
  for f in src/$stage/*.h src/$stage/*.cpp; do
    [ -e "$f" ] || continue
    while IFS= read -r line; do
      inc=$(sed -E 's/^[0-9]+:#include "(.*)\/[^/]*"$/\1/' <<<"$line")
      [[ "$ok" == *" $inc "* ]] || { echo "layering: $f:${line%%:*} includes $inc/, which $stage/ may not (allowed: ${row#*|})"; fail=1; }
    done < <(grep -nE '^#include "[a-z_/]+/[^/"]+"' "$f")
  done
done
bad=$(grep -rnE '(^|[^_a-z])(std::)?exit\(' src --include=*.cpp --include=*.h | grep -v '^src/cli/' | grep -vE ':[0-9]+:\s*//')
[ -n "$bad" ] && { echo "exit() in the library:"; echo "$bad"; fail=1; }
bad=$(grep -rn '#include "cli/' src --include=*.cpp --include=*.h | grep -v '^src/cli/')
[ -n "$bad" ] && { echo "the library includes cli/:"; echo "$bad"; fail=1; }
# The library's messages name fields, tensors and files; only cli/ names --flags (llama2.c's
# own export.py flag excepted).
bad=$(grep -rn '"[^"]*--[a-z]' src --include=*.cpp --include=*.h | grep -v '^src/cli/' | grep -vE ':[0-9]+:\s*//' |
      grep -v 'export.py --version')
[ -n "$bad" ] && { echo "library messages name --flags (name the field; flags belong in cli/):"; echo "$bad"; fail=1; }
bad=$(grep -rn '#include <torch/torch.h>' src tests bench --include=*.cpp --include=*.h)
[ -n "$bad" ] && { echo "includes <torch/torch.h>:"; echo "$bad"; fail=1; }
long=$(for f in $(find src -name '*.cpp'); do
  awk -v f="$f" '/^[^ \t#\/].*\{[ \t]*$/ && !/^(namespace|struct|class|enum|extern)/ { start = NR; name = $0 }
                 /^\}/ && start { if (NR - start > 150) printf "%s:%d: %d lines: %s\n", f, start, NR - start, name; start = 0 }' "$f"
done)
[ -n "$long" ] && { echo "functions over 150 lines:"; echo "$long"; fail=1; }
[ $fail -eq 0 ] && echo "style check passed"
exit $fail
