#include "cli/dist_flags.h"

#include <cstdlib>

#include "common/error.h"

namespace sr::cli {
namespace {

// An integer flag, else the environment variable torchrun sets, else `fallback`.
int64_t flag_or_env(const Args& a, const std::string& flag, const char* env, int64_t fallback) {
  if (a.has(flag)) return a.integer(flag, fallback);
  const char* v = std::getenv(env);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long long n = std::strtoll(v, &end, 10);
  SR_CHECK(*end == 0, "environment variable ", env, " must be an integer, got '", v, "'");
  return n;
}

}  // namespace

std::vector<FlagSpec> dist_flags() {
  return {
      {"rank", true, "this process's rank in a data-parallel run, in [0, world_size)", "$RANK, else 0"},
      {"world-size", true, "processes of a data-parallel run (only rank 0 writes outputs)", "$WORLD_SIZE, else 1"},
      {"master-addr", true, "address rank 0 listens on for the others", "$MASTER_ADDR, else 127.0.0.1"},
      {"master-port", true, "port rank 0 listens on", "$MASTER_PORT, else 29500"},
      {"dist-timeout", true, "seconds to wait for the other ranks (connecting, and each exchange)", "300"},
  };
}

std::unique_ptr<Comm> connect_ranks(const Args& a) {
  CommConfig cfg;
  cfg.world = int(flag_or_env(a, "world-size", "WORLD_SIZE", 1));
  cfg.rank = int(flag_or_env(a, "rank", "RANK", 0));
  SR_CHECK(cfg.world >= 1 && cfg.rank >= 0 && cfg.rank < cfg.world, "--rank must be in [0, --world_size), got rank ",
           cfg.rank, " of world size ", cfg.world);
  if (cfg.world == 1) return nullptr;
  const char* addr = std::getenv("MASTER_ADDR");
  cfg.master_addr = a.str("master-addr", addr && *addr ? addr : "127.0.0.1");
  cfg.master_port = int(flag_or_env(a, "master-port", "MASTER_PORT", 29500));
  cfg.timeout_s = a.number("dist-timeout", 300);
  SR_CHECK(cfg.timeout_s > 0, "--dist_timeout must be > 0, got ", cfg.timeout_s);
  return Comm::connect(cfg);
}

}  // namespace sr::cli
