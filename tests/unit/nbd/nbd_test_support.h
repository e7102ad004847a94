// Helpers for the NBD tests: a server running on its own EventLoop thread, and
// a deliberately low-level blocking client that speaks raw protocol bytes, so
// tests can send exactly what a well-behaved or hostile client would.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/event_loop.h"
#include "base/unique_fd.h"
#include "storage/nbd/nbd_protocol.h"
#include "storage/nbd/nbd_server.h"

namespace strata::storage::nbd::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "strata-nbd-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Owns an EventLoop that runs on a background thread once start() is called.
// Build devices and the server before start(); afterwards touch them only via call().
class LoopThread {
 public:
  LoopThread() { loop_ = std::move(*EventLoop::create()); }
  ~LoopThread() { stop(); }
  EventLoop& loop() { return *loop_; }
  void start() {
    thread_ = std::thread([this] { loop_->run(); });
  }
  // Runs fn on the loop thread and waits for its result.
  template <typename Fn>
  auto call(Fn fn) -> decltype(fn()) {
    if (!thread_.joinable()) return fn();
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    loop_->post([&task] { task(); });
    return result.get();
  }
  void stop() {
    if (!thread_.joinable()) return;
    loop_->stop();
    thread_.join();
  }

 private:
  std::unique_ptr<EventLoop> loop_;
  std::thread thread_;
};

struct OptionReply {
  uint32_t option = 0;
  uint32_t type = 0;
  std::vector<uint8_t> data;
};

struct Reply {
  bool structured = false;
  uint16_t flags = 0;  // structured only
  uint16_t type = 0;   // structured only
  uint32_t error = 0;  // simple reply error, or the error of an ERROR chunk
  uint64_t handle = 0;
  std::vector<uint8_t> payload;  // structured payload, or READ data of a simple reply
  std::string message;           // text of an ERROR chunk
};

// A blocking client with a receive timeout, so a server that hangs fails the test instead of hanging it.
class RawClient {
 public:
  static RawClient connectUnix(const std::string& path) {
    RawClient client;
    client.fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    if (::connect(client.fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) client.fd_.reset();
    timeval timeout{10, 0};
    ::setsockopt(client.fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(client.fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    return client;
  }
  bool connected() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }
  void close() { fd_.reset(); }
  void shutdownWrite() { ::shutdown(fd_.get(), SHUT_WR); }

  bool send(const std::vector<uint8_t>& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(fd_.get(), bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  bool receive(size_t length, std::vector<uint8_t>& out) {
    out.resize(length);
    size_t got = 0;
    while (got < length) {
      ssize_t n = ::recv(fd_.get(), out.data() + got, length - got, 0);
      if (n <= 0) return false;
      got += static_cast<size_t>(n);
    }
    return true;
  }
  // True when the server closed the connection (end of file, or reset) within the timeout.
  bool closedByServer() {
    char byte;
    while (true) {
      ssize_t n = ::recv(fd_.get(), &byte, 1, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET || errno == EPIPE;
    }
  }
  // False when data is waiting or the connection closed.
  bool quiet(int milliseconds = 100) {
    pollfd entry{fd_.get(), POLLIN, 0};
    return ::poll(&entry, 1, milliseconds) == 0;
  }

  // Reads the greeting and sends client flags.
  void handshake(uint32_t clientFlags = kClientFlagFixedNewstyle | kClientFlagNoZeroes) {
    std::vector<uint8_t> greeting;
    ASSERT_TRUE(receive(kHandshakeSize, greeting));
    ASSERT_EQ(loadBe64(greeting.data()), kNbdMagic);
    ASSERT_EQ(loadBe64(greeting.data() + 8), kOptionMagic);
    std::vector<uint8_t> flags;
    WireWriter(flags).u32(clientFlags);
    ASSERT_TRUE(send(flags));
  }
  bool sendOption(uint32_t option, const std::vector<uint8_t>& data) {
    std::vector<uint8_t> message;
    WireWriter(message).u64(kOptionMagic).u32(option).u32(static_cast<uint32_t>(data.size()));
    message.insert(message.end(), data.begin(), data.end());
    return send(message);
  }
  bool readOptionReply(OptionReply& reply) {
    std::vector<uint8_t> header;
    if (!receive(kOptionReplyHeaderSize, header)) return false;
    EXPECT_EQ(loadBe64(header.data()), kOptionReplyMagic);
    reply.option = loadBe32(header.data() + 8);
    reply.type = loadBe32(header.data() + 12);
    return receive(loadBe32(header.data() + 16), reply.data);
  }
  // Sends an option and collects replies up to the final one (ACK or an error).
  std::vector<OptionReply> option(uint32_t option, const std::vector<uint8_t>& data) {
    std::vector<OptionReply> replies;
    if (!sendOption(option, data)) return replies;
    OptionReply reply;
    while (readOptionReply(reply)) {
      replies.push_back(reply);
      if (reply.type == kRepAck || (reply.type & kRepErrorBit)) break;
    }
    return replies;
  }
  static std::vector<uint8_t> goData(const std::string& name, const std::vector<uint16_t>& infos = {}) {
    std::vector<uint8_t> data;
    WireWriter writer(data);
    writer.u32(static_cast<uint32_t>(name.size())).bytes(name).u16(static_cast<uint16_t>(infos.size()));
    for (uint16_t info : infos) writer.u16(info);
    return data;
  }
  static std::vector<uint8_t> metaData(const std::string& name, const std::vector<std::string>& queries) {
    std::vector<uint8_t> data;
    WireWriter writer(data);
    writer.u32(static_cast<uint32_t>(name.size())).bytes(name).u32(static_cast<uint32_t>(queries.size()));
    for (const auto& query : queries) writer.u32(static_cast<uint32_t>(query.size())).bytes(query);
    return data;
  }
  // Handshake, optional structured replies and base:allocation, then NBD_OPT_GO.
  // Returns the transmission flags (0 on failure).
  uint16_t connectExport(const std::string& name = "", bool structured = false, bool allocation = false) {
    handshake();
    if (structured) {
      auto replies = option(kOptStructuredReply, {});
      if (replies.empty() || replies.back().type != kRepAck) return 0;
    }
    if (allocation) {
      auto replies = option(kOptSetMetaContext, metaData(name, {std::string(kBaseAllocation)}));
      if (replies.empty() || replies.back().type != kRepAck) return 0;
    }
    structured_ = structured;
    auto replies = option(kOptGo, goData(name));
    if (replies.empty() || replies.back().type != kRepAck) return 0;
    for (const auto& reply : replies) {
      if (reply.type == kRepInfo && reply.data.size() == 12 && loadBe16(reply.data.data()) == kInfoExport) {
        return loadBe16(reply.data.data() + 10);
      }
    }
    return 0;
  }
  void setStructured(bool structured) { structured_ = structured; }

  bool request(uint16_t type, uint64_t handle, uint64_t offset, uint32_t length, uint16_t flags = 0,
               const std::vector<uint8_t>& payload = {}) {
    std::vector<uint8_t> message;
    WireWriter(message).u32(kRequestMagic).u16(flags).u16(type).u64(handle).u64(offset).u32(length);
    message.insert(message.end(), payload.begin(), payload.end());
    return send(message);
  }
  // Reads one reply (for a simple READ reply, readLength bytes of data follow a success).
  bool readReply(Reply& reply, size_t readLength = 0) {
    reply = Reply{};
    std::vector<uint8_t> magic;
    if (!receive(4, magic)) return false;
    std::vector<uint8_t> rest;
    if (loadBe32(magic.data()) == kSimpleReplyMagic) {
      if (!receive(12, rest)) return false;
      reply.error = loadBe32(rest.data());
      reply.handle = loadBe64(rest.data() + 4);
      if (reply.error == 0 && readLength > 0 && !receive(readLength, reply.payload)) return false;
      return true;
    }
    EXPECT_EQ(loadBe32(magic.data()), kStructuredReplyMagic);
    if (loadBe32(magic.data()) != kStructuredReplyMagic || !receive(16, rest)) return false;
    reply.structured = true;
    reply.flags = loadBe16(rest.data());
    reply.type = loadBe16(rest.data() + 2);
    reply.handle = loadBe64(rest.data() + 4);
    if (!receive(loadBe32(rest.data() + 12), reply.payload)) return false;
    if (reply.type & 0x8000) {
      if (reply.payload.size() < 6) return false;
      reply.error = loadBe32(reply.payload.data());
      uint16_t length = loadBe16(reply.payload.data() + 4);
      if (reply.payload.size() < 6u + length) return false;
      reply.message.assign(reinterpret_cast<const char*>(reply.payload.data() + 6), length);
    }
    return true;
  }
  // Writes and waits for the reply's error value (~0u if the connection failed).
  uint32_t write(uint64_t handle, uint64_t offset, const std::vector<uint8_t>& data, uint16_t flags = 0) {
    Reply reply;
    if (!request(kCmdWrite, handle, offset, static_cast<uint32_t>(data.size()), flags, data) || !readReply(reply)) {
      return ~0u;
    }
    EXPECT_EQ(reply.handle, handle);
    return reply.error;
  }
  // Reads and returns the data; error receives the reply's error value.
  std::vector<uint8_t> read(uint64_t handle, uint64_t offset, uint32_t length, uint32_t& error) {
    Reply reply;
    error = ~0u;
    if (!request(kCmdRead, handle, offset, length) || !readReply(reply, length)) return {};
    EXPECT_EQ(reply.handle, handle);
    error = reply.error;
    if (reply.structured && reply.type == kReplyTypeOffsetData && reply.payload.size() >= 8) {
      EXPECT_EQ(loadBe64(reply.payload.data()), offset);
      return std::vector<uint8_t>(reply.payload.begin() + 8, reply.payload.end());
    }
    return reply.payload;
  }
  uint32_t command(uint16_t type, uint64_t handle, uint64_t offset, uint32_t length, uint16_t flags = 0) {
    Reply reply;
    if (!request(type, handle, offset, length, flags) || !readReply(reply)) return ~0u;
    EXPECT_EQ(reply.handle, handle);
    return reply.error;
  }

 private:
  UniqueFd fd_;
  bool structured_ = false;
};

inline std::vector<uint8_t> pattern(size_t length, uint32_t seed) {
  std::vector<uint8_t> bytes(length);
  uint32_t state = seed * 2654435761u + 1;
  for (auto& b : bytes) {
    state = state * 1103515245u + 12345u;
    b = static_cast<uint8_t>(state >> 16);
  }
  return bytes;
}

}  // namespace strata::storage::nbd::testing
