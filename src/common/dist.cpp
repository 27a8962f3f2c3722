#include "common/dist.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>

#include "common/error.h"

#ifdef SIGNROUND_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace sr {

#ifdef SIGNROUND_HAVE_GLOO

struct Comm::Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};

namespace {

// c10's messages carry a C++ backtrace after the first line: keep the message.
std::string reason(const std::exception& e) {
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

std::chrono::milliseconds millis(double s) { return std::chrono::milliseconds(int64_t(s * 1000)); }

// The interface peers reach this rank on: GLOO_SOCKET_IFNAME when set (as torchrun), loopback
// for a loopback master (several ranks on one machine), else the address this host's name
// resolves to.
std::shared_ptr<::gloo::transport::Device> device_for(const CommConfig& cfg) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (cfg.master_addr == "localhost" || cfg.master_addr.rfind("127.", 0) == 0)
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

// Runs a collective and waits for it; a failure (a peer gone, the timeout) becomes sr::Error.
template <typename Start>
void run(const CommConfig& cfg, const char* what, Start start) {
  try {
    start()->wait();
  } catch (const std::exception& e) {
    fail("[dist] rank ", cfg.rank, " of ", cfg.world, ": ", what, " failed (a rank exited, or did not answer within ",
         cfg.timeout_s, " s): ", reason(e));
  }
}

}  // namespace

std::unique_ptr<Comm> Comm::connect(const CommConfig& cfg) {
  SR_CHECK(cfg.world >= 2 && cfg.rank >= 0 && cfg.rank < cfg.world, "[dist] rank must be in [0, world) and world >= 2, got rank ",
           cfg.rank, " of ", cfg.world);
  SR_CHECK(cfg.master_port > 0 && cfg.master_port < 65536, "[dist] master port must be in [1, 65535], got ", cfg.master_port);
  auto g = std::make_unique<Group>();
  try {
    c10d::TCPStoreOptions so;
    so.port = uint16_t(cfg.master_port);
    so.isServer = cfg.rank == 0;
    so.numWorkers = size_t(cfg.world);
    so.waitWorkers = true;
    so.timeout = millis(cfg.timeout_s);
    g->store = c10::make_intrusive<c10d::TCPStore>(cfg.master_addr, so);
    auto po = c10d::ProcessGroupGloo::Options::create(millis(cfg.timeout_s));
    po->devices.push_back(device_for(cfg));
    po->threads = 1;
    g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, cfg.rank, cfg.world, po);
  } catch (const std::exception& e) {
    fail("[dist] rank ", cfg.rank, " of ", cfg.world, ": could not connect to the other ranks through ", cfg.master_addr,
         ":", cfg.master_port, " within ", cfg.timeout_s, " s: ", reason(e));
  }
  return std::unique_ptr<Comm>(new Comm(cfg, std::move(g)));
}

void Comm::all_reduce(std::vector<at::Tensor>& tensors, Op op) const {
  std::map<at::ScalarType, std::vector<at::Tensor*>> by_type;
  for (at::Tensor& t : tensors) by_type[t.scalar_type()].push_back(&t);
  c10d::AllreduceOptions o;
  o.reduceOp = op == Op::Sum ? c10d::ReduceOp::SUM : c10d::ReduceOp::MAX;
  for (auto& [type, list] : by_type) {
    std::vector<at::Tensor> flat;
    for (at::Tensor* t : list) flat.push_back(t->reshape(-1));
    std::vector<at::Tensor> buf = {at::cat(flat)};
    payload_ += int64_t(buf[0].nbytes());
    run(cfg_, "all_reduce", [&] { return group_->pg->allreduce(buf, o); });
    int64_t at = 0;
    for (at::Tensor* t : list) {
      t->copy_(buf[0].narrow(0, at, t->numel()).view(t->sizes()));
      at += t->numel();
    }
  }
}

std::function<void()> Comm::start_sum(at::Tensor flat) const {
  SR_CHECK(flat.defined() && flat.is_contiguous(), "[dist] start_sum needs a contiguous tensor");
  auto buf = std::make_shared<std::vector<at::Tensor>>(std::vector<at::Tensor>{flat});
  payload_ += int64_t(flat.nbytes());
  c10::intrusive_ptr<c10d::Work> work;
  try {
    work = group_->pg->allreduce(*buf, c10d::AllreduceOptions());
  } catch (const std::exception& e) {
    fail("[dist] rank ", cfg_.rank, " of ", cfg_.world, ": all_reduce could not start: ", reason(e));
  }
  const CommConfig cfg = cfg_;
  return [work, buf, cfg] { run(cfg, "all_reduce", [&] { return work; }); };
}

void Comm::broadcast(at::Tensor& t, int root) const {
  std::vector<at::Tensor> buf = {t.contiguous()};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  if (cfg_.rank == root) payload_ += int64_t(buf[0].nbytes());
  run(cfg_, "broadcast", [&] { return group_->pg->broadcast(buf, o); });
  if (!buf[0].is_same(t)) t.copy_(buf[0]);
}

void Comm::barrier() const {
  run(cfg_, "barrier", [&] { return group_->pg->barrier(); });
}

#else  // built without gloo's headers (libgloo-dev)

struct Comm::Group {};

std::unique_ptr<Comm> Comm::connect(const CommConfig& cfg) {
  fail("[dist] rank ", cfg.rank, " of ", cfg.world, ": this build has no data-parallel support (built without "
       "libgloo-dev; scripts/setup.sh installs it)");
}
void Comm::all_reduce(std::vector<at::Tensor>&, Op) const {}
std::function<void()> Comm::start_sum(at::Tensor) const { return [] {}; }
void Comm::broadcast(at::Tensor&, int) const {}
void Comm::barrier() const {}

#endif

Comm::Comm(const CommConfig& cfg, std::unique_ptr<Group> g) : cfg_(cfg), group_(std::move(g)) {}
Comm::~Comm() = default;

bool rank0_says(const Comm* comm, bool b) {
  if (!comm) return b;
  at::Tensor t = at::full({1}, b ? 1 : 0, at::kInt);
  comm->broadcast(t, 0);
  return t.item<int>() != 0;
}

std::string rank0_string(const Comm* comm, const std::string& s) {
  if (!comm) return s;
  at::Tensor n = at::full({1}, int64_t(s.size()), at::kLong);
  comm->broadcast(n, 0);
  at::Tensor bytes = at::zeros({n.item<int64_t>()}, at::kByte);
  if (comm->rank() == 0 && !s.empty()) std::memcpy(bytes.data_ptr<uint8_t>(), s.data(), s.size());
  if (bytes.numel() > 0) comm->broadcast(bytes, 0);
  return std::string(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), size_t(bytes.numel()));
}

Share share_of(const Comm* comm, int64_t n) {
  if (!comm) return {0, n};
  const int64_t w = comm->world(), r = comm->rank(), base = n / w, extra = n % w;
  const int64_t begin = r * base + std::min(r, extra);
  return {begin, begin + base + (r < extra ? 1 : 0)};
}

at::Tensor gather_rows(const Comm* comm, const at::Tensor& mine, int64_t n, int64_t at) {
  if (!comm) return mine;
  SR_CHECK(mine.is_floating_point(), "[dist] gather_rows: rows must be floating point, got ", mine.scalar_type());
  std::vector<int64_t> shape = mine.sizes().vec();
  shape[0] = n;
  std::vector<at::Tensor> whole = {at::zeros(shape, mine.options())};
  whole[0].narrow(0, at, mine.size(0)).copy_(mine);
  comm->all_reduce(whole);
  return whole[0];
}

}  // namespace sr
