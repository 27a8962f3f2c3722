// The data-parallel flags shared by quantize, autoscheme and eval (docs/results-scale.md,
// "Data-parallel tuning"): one process per rank; torchrun's environment (RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT) gives the defaults.
#pragma once
#include <memory>
#include <vector>

#include "cli/args.h"
#include "common/dist.h"

namespace sr::cli {

// --rank, --world_size, --master_addr, --master_port, --dist_timeout.
std::vector<FlagSpec> dist_flags();

// The group of a data-parallel run, or null for a 1-process run (no c10d at all). Throws naming
// the flag (or the environment variable) on a malformed value, and sr::Error from Comm::connect
// when the other ranks do not come.
std::unique_ptr<Comm> connect_ranks(const Args& a);

}  // namespace sr::cli
