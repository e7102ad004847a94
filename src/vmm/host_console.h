// HostConsole: where the guest's console meets the host — standard input and
// output (a terminal in raw mode with a Ctrl-A escape, or pipes), a new
// pseudo-terminal, or a file; and optionally also a UNIX socket (one client at a
// time, the newest wins: how `strata daemon` reaches a VM's console). Input is
// delivered to a callback on the VM's event loop; piped input is passed on in
// full and never dropped; output a socket client does not take at once is dropped.
#pragma once

#include <termios.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "base/event_loop.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace strata::vmm {

struct ConsoleConfig {
  enum class Kind { Stdio, Pty, File };
  Kind kind = Kind::Stdio;
  std::string path;        // for File
  std::string socketPath;  // also serve the console here (--console-socket), or empty
};

Result<ConsoleConfig> parseConsoleConfig(const std::string& text);

class HostConsole {
 public:
  using InputHandler = std::function<void(const uint8_t* data, size_t length)>;
  using QuitHandler = std::function<void()>;

  static Result<std::unique_ptr<HostConsole>> open(const ConsoleConfig& config);
  ~HostConsole();

  // Starts reading input on `loop`: bytes go to onInput; the escape sequence
  // Ctrl-A x (terminals only) calls onQuit.
  Result<void> attach(EventLoop& loop, InputHandler onInput, QuitHandler onQuit);
  void detach(EventLoop& loop);

  // Guest output; callable from any thread.
  void write(const uint8_t* data, size_t length);

 private:
  HostConsole() = default;
  void onReadable(EventLoop& loop);
  void filterEscapes(const uint8_t* data, size_t length);
  Result<void> listenOn(const std::string& path);
  void acceptClient(EventLoop& loop);
  void onClientReadable(EventLoop& loop);
  void dropClient(EventLoop& loop);

  UniqueFd ownedInput_;   // pty master or nothing
  UniqueFd ownedOutput_;  // file or nothing
  int inputFd_ = -1;      // -1: no input
  int outputFd_ = 1;
  bool terminal_ = false;
  bool escapePending_ = false;
  bool attached_ = false;
  termios savedTermios_{};
  UniqueFd listener_;    // --console-socket, or nothing
  std::mutex clientMutex_;  // the client is written from vCPU threads, replaced on the loop thread
  UniqueFd client_;
  InputHandler onInput_;
  QuitHandler onQuit_;
};

}  // namespace strata::vmm
