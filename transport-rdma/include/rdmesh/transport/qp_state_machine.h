// The RC queue pair's state machine (IBA 10.3.1), as far as rdmesh drives it: which moves are
// legal and which attributes ibv_modify_qp() must be given for each. Pure logic, so every legal
// and illegal move is unit-tested without an RDMA device.
#pragma once

#include <infiniband/verbs.h>

#include "rdmesh/common/status.h"

namespace rdmesh::transport {

enum class QpState { kReset, kInit, kRtr, kRts, kError };

const char* toString(QpState state);
ibv_qp_state toIbv(QpState state);

class QpStateMachine {
 public:
  QpState state() const { return state_; }

  // The ibv_qp_attr_mask an RC QP needs to move from `from` to `to`, or an error naming the move
  // when the IBA forbids it (e.g. RESET -> RTS skips INIT and RTR).
  static Result<int> requiredMask(QpState from, QpState to);

  // Mask for a move from the current state; the state changes only with commit().
  Result<int> prepare(QpState to) const { return requiredMask(state_, to); }
  void commit(QpState to) { state_ = to; }

 private:
  QpState state_ = QpState::kReset;
};

}  // namespace rdmesh::transport
