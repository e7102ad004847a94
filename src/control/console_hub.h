// ConsoleHub: the daemon's side of each VM's serial console. One connection per
// VM to the console socket its `strata run --console-socket` serves, made at
// the first attach (so also after the daemon restarted and adopted the VM),
// a bounded scrollback (seeded from the VM's console log), and any number of
// attached viewers (CLI, browsers) who all see the output and may all type.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "base/result.h"

namespace strata::control {

class ConsoleChannel;

class ConsoleAttachment {
 public:
  ConsoleAttachment(std::shared_ptr<ConsoleChannel> channel, uint64_t id) : channel_(std::move(channel)), id_(id) {}
  ~ConsoleAttachment();  // detaches
  ConsoleAttachment(const ConsoleAttachment&) = delete;
  ConsoleAttachment& operator=(const ConsoleAttachment&) = delete;

  void type(std::string_view input);  // to the guest; dropped if the VM cannot take it now

 private:
  std::shared_ptr<ConsoleChannel> channel_;
  uint64_t id_;
};

struct ConsoleViewer {
  // Called from the channel's reader thread; must not block (queue and return).
  std::function<void(std::string_view output)> onOutput;
  std::function<void()> onEnd;  // the VM's console went away (the VM stopped)
};

class ConsoleHub {
 public:
  static constexpr size_t kScrollback = 64 * 1024;

  ~ConsoleHub();  // ends every channel; viewers get onEnd
  // Attaches to the console socket and log of one VM: the viewer first gets
  // the scrollback, then everything the guest writes.
  Result<std::unique_ptr<ConsoleAttachment>> attach(const std::string& vm, const std::string& socketPath,
                                                    const std::string& logPath, ConsoleViewer viewer);

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<ConsoleChannel>> channels_;
};

}  // namespace strata::control
