// Data-parallel runs: N processes ("ranks", one per machine or several on one) that each hold a
// shard of the calibration samples and meet in collectives. Rendezvous on rank 0's address
// through a TCP key-value store, then collectives over TCP with the gloo backend (libtorch's
// c10d). A 1-process run has no group: the library takes a `const Comm*` that is null then, and
// never touches c10d.
//
// Faults: every collective, and connecting, gives up after `timeout_s`; a peer that exits
// (crash, kill, an error of its own) closes its sockets, and the collectives of the others fail at
// once. Either way the call throws sr::Error naming this rank, the operation and the cause, so a
// run ends on every rank instead of hanging.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/torch.h"

namespace sr {

struct CommConfig {
  int rank = 0;                            // this process, in [0, world)
  int world = 1;                           // processes in the run
  std::string master_addr = "127.0.0.1";   // where rank 0 listens (the store)
  int master_port = 29500;
  double timeout_s = 300;                  // connecting, and each collective
};

// A process group of CommConfig::world ranks. Collectives must be called by every rank in the
// same order with tensors of the same shapes and dtypes. Not thread-safe.
class Comm {
 public:
  // Connects to the other ranks (rank 0 hosts the store). REQUIRES: world >= 2, 0 <= rank < world.
  // Throws sr::Error when the others do not all arrive within timeout_s.
  static std::unique_ptr<Comm> connect(const CommConfig& cfg);
  ~Comm();
  int rank() const { return cfg_.rank; }
  int world() const { return cfg_.world; }

  enum class Op { Sum, Max };
  // Each tensor becomes its elementwise reduction over the ranks, in place. Tensors of one dtype
  // travel as one buffer. With 2 ranks a sum is a + b on both, hence bit-identical to a
  // 1-process a + b; with more the order is the backend's (the same result on every rank).
  // REQUIRES: defined CPU tensors.
  void all_reduce(std::vector<at::Tensor>& tensors, Op op = Op::Sum) const;
  // Starts a sum of `flat` over the ranks, in place, and returns at once; call the returned
  // function to wait for it (it throws sr::Error as all_reduce does). Lets the caller overlap
  // the exchange with its own work (tuning: gradients reduced while the backward goes on).
  // Collectives run in the order they were started, which must be the same on every rank; `flat`
  // must not be touched until waited for. REQUIRES: a defined, contiguous CPU tensor.
  std::function<void()> start_sum(at::Tensor flat) const;
  // t becomes root's t on every rank (same shape and dtype everywhere).
  void broadcast(at::Tensor& t, int root = 0) const;
  // Returns when every rank has called it.
  void barrier() const;
  // Bytes this rank handed to collectives so far (payload; a ring all-reduce puts about
  // 2 (world - 1) / world times that on the wire per rank).
  int64_t payload_bytes() const { return payload_; }

 private:
  struct Group;
  Comm(const CommConfig& cfg, std::unique_ptr<Group> g);
  CommConfig cfg_;
  std::unique_ptr<Group> group_;
  mutable int64_t payload_ = 0;
};

// b broadcast from rank 0 (comm null: b).
bool rank0_says(const Comm* comm, bool b);
// s broadcast from rank 0 (comm null: s): a record that only rank 0 read (a cache file).
std::string rank0_string(const Comm* comm, const std::string& s);

// The contiguous share of n items (samples, batches, chunks) of this rank: [begin, end). Shares
// differ by at most one item when the ranks do not divide n (the first ranks take the larger
// ones); a rank may get none when n < world. comm null: [0, n).
struct Share {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};
Share share_of(const Comm* comm, int64_t n);

// Every rank's rows in one tensor, on every rank: `mine` holds this rank's rows [n_r, ...] of a
// [n, ...] whole whose rows [at, at + n_r) they are. Each row of the whole must be held by exactly
// one rank; the others' rows are zero while summed, so values arrive bit for bit (x + 0 = x; only
// a −0 arrives as +0).
// REQUIRES: a floating dtype, the same n, trailing shape and dtype on every rank. comm null: mine.
at::Tensor gather_rows(const Comm* comm, const at::Tensor& mine, int64_t n, int64_t at);

}  // namespace sr
