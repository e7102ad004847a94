// SwitchService: what `strata switch NAME` runs on its EventLoop — a Switch,
// the UNIX socket VM processes attach to (one SocketPort each; a VM that dies
// takes only its port down), TAP and VXLAN ports, periodic MAC aging, and the control
// socket serving `strata switch flow|port ...` (one request line, one reply),
// flow rule timeouts, and optionally an OpenFlow 1.3 listener for controllers.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "base/event_loop.h"
#include "base/loop_timer.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "network/openflow_server.h"
#include "network/switch.h"

namespace strata::network {

class SwitchService {
 public:
  // Listens on switchPaths(name); refuses if a switch of that name is already running.
  static Result<std::unique_ptr<SwitchService>> start(std::string name, EventLoop& loop,
                                                      Switch::Options options = {});
  ~SwitchService();  // removes its socket files
  SwitchService(const SwitchService&) = delete;
  SwitchService& operator=(const SwitchService&) = delete;

  // "NAME[,vlan=N|,trunk=N,M,...[,native=N]]": opens (or creates) TAP interface NAME as a port.
  Result<PortId> addTap(std::string_view spec);
  // "NAME,remote=IP[:PORT],vni=N[,local=IP[:PORT]][,vlan=N|,trunk=...]": a VXLAN tunnel port.
  Result<PortId> addVxlan(std::string_view spec);

  // Serves OpenFlow 1.3 controllers at target ("ptcp:PORT[:IP]" or "ptcp:IP:PORT"); returns "IP:PORT".
  Result<std::string> listenOpenFlow(std::string_view target);

  // One control request ("flow-add SPEC", "flow-del ID", "flow-list [json]",
  // "port-list [json]", "mirror PORT PORT|off"); the reply's first line is "ok"
  // or "error: MESSAGE", the body follows.
  std::string handleRequest(std::string_view request);

  Switch& fabric() { return switch_; }
  const std::string& name() const { return name_; }

 private:
  struct Attachment;
  struct PendingAttach;
  struct ControlClient;

  SwitchService(std::string name, EventLoop& loop, Switch::Options options);
  Result<void> listen();
  void acceptPorts();
  void onAttachRequest(int fd);
  void detach(PortId id, const PacketPort* port);
  void announcePort(PortId id, bool added);  // PORT_STATUS to OpenFlow controllers
  void acceptControl();
  void onControlEvent(int fd, uint32_t events);
  void closeControl(int fd);
  std::optional<PortId> resolvePort(std::string_view text) const;
  std::string listPorts(bool json) const;
  std::string listFlows(bool json) const;
  void scheduleAging();

  std::string name_;
  EventLoop& loop_;
  Switch switch_;
  std::string portsPath_, controlPath_;
  UniqueFd portsListener_, controlListener_;
  std::map<int, std::unique_ptr<PendingAttach>> pendingAttach_;  // accepted, attach request not yet read
  std::map<PortId, std::unique_ptr<Attachment>> attachments_;
  std::map<int, std::unique_ptr<ControlClient>> controlClients_;
  std::unique_ptr<LoopTimer> agingTimer_;
  std::unique_ptr<OpenFlowServer> openFlow_;
};

// Client side of the control socket: sends request to switch NAME, returns the reply body or its error.
Result<std::string> sendSwitchRequest(std::string_view switchName, std::string_view request);

}  // namespace strata::network
