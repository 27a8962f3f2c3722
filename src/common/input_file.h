// Opening input files safely: only regular files (a FIFO, a device or a socket given
// as --model, --text, --dataset, a tokenizer or a layer config is refused at once
// instead of blocking or reading forever), with a size limit checked before reading.
#pragma once
#include <cstdint>
#include <string>

namespace sr {

// Throws sr::Error naming `path` unless it exists and is a regular file (symlinks
// followed). `what` says which input it is ("--text", "tokenizer", ...), may be "".
void check_regular_file(const std::string& path, const std::string& what = "");

// The whole file, read after check_regular_file and after checking its size against
// `max_bytes` (the refusal names the file, its size and the limit).
std::string read_input_file(const std::string& path, uint64_t max_bytes, const std::string& what = "");

}  // namespace sr
