#!/usr/bin/env bash
# Structural rules of the code base (docs/style in ../shared/docs/style.md), run as a test:
#  1. dependencies point one way: io/model/quant/tokenizer/common never include higher stages;
#  2. the library never calls exit() (errors are exceptions; only cli/ decides exit codes), never
#     includes cli/, and its messages name fields, not --flags;
#  3. nobody includes <torch/torch.h> (use common/torch.h: a third of the compile time);
#  4. no function body longer than 150 lines (top-level "{ ... }" blocks, column 0).
set -u
cd "$(dirname "$0")/.."
fail=0
bad=$(grep -rnE '#include "(tune|alloc|export|eval|cli)/' src/common src/io src/model src/quant src/tokenizer)
[ -n "$bad" ] && { echo "layering: lower stages include higher ones:"; echo "$bad"; fail=1; }
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
