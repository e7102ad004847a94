// OpenFlowServer: the switch's OpenFlow 1.3 listener (`--openflow ptcp:...`).
// Accepts controller connections on TCP, frames their messages, feeds each to
// its OpenFlowSession and writes replies without ever blocking: a controller
// that stalls gets its PACKET_INs dropped (counted) past a small backlog and its
// requests left unread, so the data path never waits on a controller.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "network/openflow_session.h"
#include "network/switch.h"

namespace strata::network {

class OpenFlowServer {
 public:
  // target: "ptcp:PORT[:IP]" (Open vSwitch's form) or "ptcp:IP:PORT"; IP defaults to 127.0.0.1,
  // PORT 0 picks a free port. Routes the switch's Controller actions to the connected controllers.
  static Result<std::unique_ptr<OpenFlowServer>> listen(std::string_view target, Switch& fabric,
                                                        std::string switchName, EventLoop& loop);
  ~OpenFlowServer();
  OpenFlowServer(const OpenFlowServer&) = delete;
  OpenFlowServer& operator=(const OpenFlowServer&) = delete;

  // Tells the connected controllers that a switch port attached (added) or is going away.
  void portChanged(bool added, const Switch::PortInfo& port);

  uint16_t port() const { return port_; }
  std::string address() const;  // "IP:PORT" as bound
  size_t connections() const { return connections_.size(); }
  uint64_t droppedPacketIns() const { return droppedPacketIns_; }

 private:
  struct Connection;

  OpenFlowServer(Switch& fabric, std::string switchName, EventLoop& loop);
  void accept();
  void onEvent(int fd, uint32_t events);
  // Handles the complete messages buffered; false: the connection must close.
  bool processInput(Connection& connection);
  bool flush(Connection& connection);
  void watchFor(Connection& connection);
  void close(int fd);
  // With every slot taken, a new connection replaces the oldest one that never said HELLO,
  // so idle connections cannot lock controllers out. False: all are real sessions.
  bool evictOneSilent();
  void toControllers(const std::function<void(OpenFlowSession&)>& queue, bool dropWhenBehind);

  Switch& switch_;
  std::string name_;
  EventLoop& loop_;
  UniqueFd listener_;
  uint32_t ip_ = 0;
  uint16_t port_ = 0;
  std::map<int, std::unique_ptr<Connection>> connections_;
  uint64_t droppedPacketIns_ = 0;
  uint64_t nextSequence_ = 0;
};

}  // namespace strata::network
