// HostConsole: where the guest's console meets the host — standard input and
// output (a terminal in raw mode with a Ctrl-A escape, or pipes), a new
// pseudo-terminal, or a file. Input is delivered to a callback on the VM's
// event loop; piped input is passed on in full and never dropped.
#pragma once

#include <termios.h>

#include <functional>
#include <memory>
#include <string>

#include "base/event_loop.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace strata::vmm {

struct ConsoleConfig {
  enum class Kind { Stdio, Pty, File };
  Kind kind = Kind::Stdio;
  std::string path;  // for File
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

  UniqueFd ownedInput_;   // pty master or nothing
  UniqueFd ownedOutput_;  // file or nothing
  int inputFd_ = -1;      // -1: no input
  int outputFd_ = 1;
  bool terminal_ = false;
  bool escapePending_ = false;
  bool attached_ = false;
  termios savedTermios_{};
  InputHandler onInput_;
  QuitHandler onQuit_;
};

}  // namespace strata::vmm
