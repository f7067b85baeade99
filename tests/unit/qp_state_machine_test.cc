#include "rdmesh/transport/qp_state_machine.h"

#include <gtest/gtest.h>

#include <vector>

namespace rdmesh::transport {
namespace {

const std::vector<QpState> kAll = {QpState::kReset, QpState::kInit, QpState::kRtr, QpState::kRts,
                                   QpState::kError};

bool legal(QpState from, QpState to) {
  return QpStateMachine::requiredMask(from, to).isOk();
}

TEST(QpStateMachine, ConnectsThroughInitRtrRts) {
  QpStateMachine m;
  EXPECT_EQ(m.state(), QpState::kReset);
  for (QpState to : {QpState::kInit, QpState::kRtr, QpState::kRts}) {
    auto mask = m.prepare(to);
    ASSERT_TRUE(mask.isOk()) << mask.status().message();
    m.commit(to);
  }
  EXPECT_EQ(m.state(), QpState::kRts);
}

TEST(QpStateMachine, ExactlyTheIbaMovesAreLegal) {
  // The moves rdmesh may make on an RC QP; everything else must be refused.
  const std::vector<std::pair<QpState, QpState>> allowed = {
      {QpState::kReset, QpState::kInit}, {QpState::kInit, QpState::kInit},
      {QpState::kInit, QpState::kRtr},   {QpState::kRtr, QpState::kRts},
      {QpState::kRts, QpState::kRts},
  };
  for (QpState from : kAll) {
    for (QpState to : kAll) {
      bool expected = to == QpState::kReset || to == QpState::kError;
      for (auto [f, t] : allowed) expected |= f == from && t == to;
      EXPECT_EQ(legal(from, to), expected) << toString(from) << " -> " << toString(to);
    }
  }
}

TEST(QpStateMachine, IllegalMovesNameBothStates) {
  auto mask = QpStateMachine::requiredMask(QpState::kReset, QpState::kRts);
  ASSERT_FALSE(mask.isOk());
  EXPECT_EQ(mask.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(mask.status().message().find("RESET -> RTS"), std::string::npos);
  EXPECT_FALSE(legal(QpState::kError, QpState::kRts));  // an errored QP must be reset first
  EXPECT_FALSE(legal(QpState::kRts, QpState::kRtr));    // no way back
}

TEST(QpStateMachine, MasksCarryTheAttributesEachMoveNeeds) {
  EXPECT_EQ(*QpStateMachine::requiredMask(QpState::kReset, QpState::kInit),
            IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
  EXPECT_EQ(*QpStateMachine::requiredMask(QpState::kInit, QpState::kRtr),
            IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
  EXPECT_EQ(*QpStateMachine::requiredMask(QpState::kRtr, QpState::kRts),
            IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                IBV_QP_MAX_QP_RD_ATOMIC);
  for (QpState from : kAll) {
    EXPECT_EQ(*QpStateMachine::requiredMask(from, QpState::kError), IBV_QP_STATE);
    EXPECT_EQ(*QpStateMachine::requiredMask(from, QpState::kReset), IBV_QP_STATE);
  }
  // The RTR mask never asks for send-side attributes, nor RTS for the path: a provider rejects
  // masks with attributes that belong to another transition.
  int rtr = *QpStateMachine::requiredMask(QpState::kInit, QpState::kRtr);
  int rts = *QpStateMachine::requiredMask(QpState::kRtr, QpState::kRts);
  EXPECT_EQ(rtr & rts, IBV_QP_STATE);
}

TEST(QpStateMachine, PrepareDoesNotMoveUntilCommitted) {
  QpStateMachine m;
  ASSERT_TRUE(m.prepare(QpState::kInit).isOk());
  EXPECT_EQ(m.state(), QpState::kReset);  // e.g. ibv_modify_qp failed: still RESET
  EXPECT_FALSE(m.prepare(QpState::kRtr).isOk());
  m.commit(QpState::kInit);
  EXPECT_TRUE(m.prepare(QpState::kRtr).isOk());
}

TEST(QpStateMachine, MapsToVerbsStates) {
  EXPECT_EQ(toIbv(QpState::kReset), IBV_QPS_RESET);
  EXPECT_EQ(toIbv(QpState::kInit), IBV_QPS_INIT);
  EXPECT_EQ(toIbv(QpState::kRtr), IBV_QPS_RTR);
  EXPECT_EQ(toIbv(QpState::kRts), IBV_QPS_RTS);
  EXPECT_EQ(toIbv(QpState::kError), IBV_QPS_ERR);
}

}  // namespace
}  // namespace rdmesh::transport
