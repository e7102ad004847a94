// Loopback TCP ports for the tests that start a `strata run --incoming`
// destination: one free now, and whether something listens on one yet.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <fmt/core.h>
#include <gtest/gtest.h>

namespace strata::test {

// A loopback port nothing listens on right now.
inline int freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

// Whether a TCP socket listens on loopback `port` (read from /proc/net/tcp,
// so no connection is spent on the destination, which takes only migrations).
inline bool listensOn(int port) {
  std::ifstream table("/proc/net/tcp");
  std::string line;
  const std::string local = fmt::format("0100007F:{:04X}", port);
  while (std::getline(table, line))
    if (line.find(local + " 00000000:0000 0A") != std::string::npos) return true;
  return false;
}

}  // namespace strata::test
