// Subcommands of the signround CLI. Each parses its own flags and returns the
// process exit code; errors propagate as sr::Error to main().
#pragma once

namespace sr::cli {

int cmd_inspect(int argc, char** argv);  // signround inspect --model PATH
int cmd_eval(int argc, char** argv);     // signround eval --model PATH --text FILE ...

}  // namespace sr::cli
