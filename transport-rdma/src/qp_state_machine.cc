#include "rdmesh/transport/qp_state_machine.h"

#include <fmt/format.h>

namespace rdmesh::transport {

const char* toString(QpState state) {
  switch (state) {
    case QpState::kReset:
      return "RESET";
    case QpState::kInit:
      return "INIT";
    case QpState::kRtr:
      return "RTR";
    case QpState::kRts:
      return "RTS";
    case QpState::kError:
      return "ERR";
  }
  return "unknown";
}

ibv_qp_state toIbv(QpState state) {
  switch (state) {
    case QpState::kReset:
      return IBV_QPS_RESET;
    case QpState::kInit:
      return IBV_QPS_INIT;
    case QpState::kRtr:
      return IBV_QPS_RTR;
    case QpState::kRts:
      return IBV_QPS_RTS;
    case QpState::kError:
      return IBV_QPS_ERR;
  }
  return IBV_QPS_ERR;
}

Result<int> QpStateMachine::requiredMask(QpState from, QpState to) {
  // Any state may be reset or moved to the error state; nothing else is needed for those.
  if (to == QpState::kReset || to == QpState::kError) return int{IBV_QP_STATE};
  switch (from) {
    case QpState::kReset:
      if (to == QpState::kInit) {
        return IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
      }
      break;
    case QpState::kInit:
      if (to == QpState::kInit) return int{IBV_QP_STATE};
      if (to == QpState::kRtr) {
        return IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
               IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
      }
      break;
    case QpState::kRtr:
      if (to == QpState::kRts) {
        return IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
               IBV_QP_MAX_QP_RD_ATOMIC;
      }
      break;
    case QpState::kRts:
      if (to == QpState::kRts) return int{IBV_QP_STATE};
      break;
    case QpState::kError:
      break;
  }
  return invalidArgument(
      fmt::format("illegal QP transition {} -> {}", toString(from), toString(to)));
}

}  // namespace rdmesh::transport
