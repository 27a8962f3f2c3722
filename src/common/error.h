// Error policy (one boundary): library code throws sr::Error (a std::runtime_error)
// whose message names the function or file, what was expected and what was found:
//   "[safetensors] model.safetensors: tensor 'x' data [0, 64) lies past the end of the file (48 bytes)"
// Only cli/main.cpp catches, prints and turns it into a non-zero exit code.
// The library never calls exit().
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace sr {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Builds a message from any streamable pieces and throws sr::Error.
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw Error(os.str());
}

}  // namespace sr

// SR_CHECK(cond, parts...): throw sr::Error(parts...) unless cond holds.
#define SR_CHECK(cond, ...)              \
  do {                                   \
    if (!(cond)) ::sr::fail(__VA_ARGS__); \
  } while (0)
