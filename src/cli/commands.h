// Subcommands of the signround CLI. Each parses its own flags and returns the
// process exit code; errors propagate as sr::Error to main().
#pragma once

namespace sr::cli {

int cmd_inspect(int argc, char** argv);  // signround inspect --model PATH
int cmd_eval(int argc, char** argv);     // signround eval --model PATH --text FILE ...
int cmd_quantize(int argc, char** argv); // signround quantize --model PATH --scheme S ... --output_dir DIR
int cmd_autoscheme(int argc, char** argv);  // signround autoscheme --model PATH --avg_bits B --options A,B ...

}  // namespace sr::cli
