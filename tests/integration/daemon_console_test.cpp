// The serial console of daemon VMs: typed into through the WebSocket (our
// client and `strata vm console`, at the same time), its scrollback kept over
// a daemon kill -9, refusals of wrong tokens, other tenants, stopped VMs and
// malformed or oversize frames (the guest and the daemon go on), a stock
// client over wss:// on the TLS listener, and the web dashboard driven in
// headless Chromium.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "control/console_client.h"
#include "control/websocket.h"
#include "daemon_process.h"

namespace strata::test {
namespace {

using control::websocket::Opcode;

// One console viewer over the daemon's UNIX socket.
class ConsoleViewer {
 public:
  ConsoleViewer(const DaemonProcess& daemon, const std::string& vm, const std::string& token = "") {
    auto opened = control::openConsole(daemon.socket(), vm, token.empty() ? daemon.adminToken() : token);
    if (!opened) {
      refusal_ = opened.error().message;
      return;
    }
    connection_ = std::move(*opened);
    pending_ = std::move(connection_.leftover);
  }
  const std::string& refusal() const { return refusal_; }
  bool open() const { return connection_.socket.valid(); }
  const std::string& text() const { return text_; }
  std::optional<uint16_t> closeCode() const { return closeCode_; }

  void send(std::string_view bytes) { ::send(connection_.socket.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL); }
  void type(const std::string& line) { send(control::websocket::encodeFrame(Opcode::Binary, line, true)); }

  // Reads output until it holds `needle` (or the server closes, or 60 s pass).
  bool waitFor(const std::string& needle) {
    return readUntil([&] { return text_.find(needle) != std::string::npos; });
  }
  bool waitForClose() {
    return readUntil([&] { return closeCode_.has_value(); });
  }

 private:
  template <typename Done>
  bool readUntil(Done done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      std::vector<control::websocket::Message> messages;
      EXPECT_FALSE(reader_.feed(std::exchange(pending_, {}), messages));
      for (const auto& message : messages) {
        if (message.opcode == Opcode::Binary) text_ += message.payload;
        if (message.opcode == Opcode::Close)
          closeCode_ = message.payload.size() >= 2 ? uint16_t(uint8_t(message.payload[0]) << 8 | uint8_t(message.payload[1])) : 1005;
      }
      if (done()) return true;
      if (closeCode_ || std::chrono::steady_clock::now() > deadline) return false;
      pollfd waiting{connection_.socket.get(), POLLIN, 0};
      char buffer[16384];
      ssize_t n = ::poll(&waiting, 1, 1000) == 1 ? ::recv(connection_.socket.get(), buffer, sizeof buffer, 0) : -2;
      if (n == 0 || n == -1) return done();
      if (n > 0) pending_.assign(buffer, static_cast<size_t>(n));
    }
  }

  control::ConsoleConnection connection_;
  control::websocket::Reader reader_{false, 1 << 24};
  std::string refusal_, pending_, text_;
  std::optional<uint16_t> closeCode_;
};

void startGuest(DaemonProcess& daemon, const std::string& name, const std::string& tenant = "default") {
  ASSERT_EQ(daemon.call("POST", "/vms", {{"name", name}, {"cpus", 1}, {"tenant", tenant}}).first, 201);
  auto [started, vm] = daemon.call("POST", "/vms/" + name + "/start");
  ASSERT_EQ(started, 200) << vm;
  ASSERT_TRUE(waitFor([&] { return readFile(vm["console"]).find("userspace up") != std::string::npos; },
                      std::chrono::seconds(240)))
      << readFile(vm["console"]);
}

TEST(DaemonConsole, TwoViewersTypeIntoTheGuestAndTheScrollbackOutlivesADaemonKill9) {
  DaemonProcess daemon("con");
  startGuest(daemon, "guest");
  ConsoleViewer viewer(daemon, "guest");
  ASSERT_TRUE(viewer.open()) << viewer.refusal();
  EXPECT_TRUE(viewer.waitFor("userspace up")) << "the scrollback comes first: " << viewer.text();
  viewer.type("echo ws-$((6*7))\n");
  EXPECT_TRUE(viewer.waitFor("ws-42")) << viewer.text();

  // The CLI at the same time: both see its command's answer.
  auto cli = runShell("(sleep 1; printf 'echo cli-$((3*3))\\n'; sleep 3; printf '\\035') | STRATA_TOKEN=" +
                      daemon.adminToken() + " " + strataBinary() + " vm console guest --daemon " + daemon.socket() +
                      " 2>&1");
  EXPECT_EQ(cli.exitCode, 0);
  EXPECT_TRUE(contains(cli.output, "cli-9"));
  EXPECT_TRUE(contains(cli.output, "console of guest: left"));
  EXPECT_TRUE(viewer.waitFor("cli-9")) << viewer.text();

  daemon.stop(SIGKILL);
  daemon.start();
  ConsoleViewer again(daemon, "guest");
  ASSERT_TRUE(again.open()) << again.refusal();
  EXPECT_TRUE(again.waitFor("cli-9")) << "scrollback after the restart: " << again.text();
  again.type("echo again-$((5*5))\n");
  EXPECT_TRUE(again.waitFor("again-25")) << again.text();

  auto [stopped, body] = daemon.call("POST", "/vms/guest/shutdown");
  EXPECT_EQ(stopped, 200) << body;
  ASSERT_TRUE(again.waitForClose());
  EXPECT_EQ(again.closeCode(), 1000);
}

// A handshake done by hand over a raw socket, then raw bytes: what a hostile client can send.
std::optional<uint16_t> closeCodeAfterSending(DaemonProcess& daemon, const std::string& frames) {
  ConsoleViewer viewer(daemon, "guest");
  EXPECT_TRUE(viewer.open()) << viewer.refusal();
  viewer.send(frames);
  viewer.waitForClose();
  return viewer.closeCode();
}

TEST(DaemonConsole, RefusesBadClientsAndFramesWhileTheGuestGoesOn) {
  DaemonProcess daemon("conbad");
  std::string acme = daemon.newTenantToken("acme");
  startGuest(daemon, "guest");
  ASSERT_EQ(daemon.call("POST", "/vms", {{"name", "idle"}}).first, 201);

  EXPECT_TRUE(contains(ConsoleViewer(daemon, "guest", "strata_0000").refusal(), "HTTP 401: unknown token"));
  EXPECT_TRUE(contains(ConsoleViewer(daemon, "guest", acme).refusal(), "HTTP 404: no VM guest"));
  EXPECT_TRUE(contains(ConsoleViewer(daemon, "nothing").refusal(), "HTTP 404: no VM nothing"));
  EXPECT_TRUE(contains(ConsoleViewer(daemon, "idle").refusal(), "HTTP 409: idle is not running"));
  EXPECT_TRUE(contains(ConsoleViewer(daemon, "../etc").refusal(), "HTTP 404"));
  auto plain = daemon.raw("GET", "/vms/guest/console", "", daemon.adminToken());
  EXPECT_EQ(plain.status, 426);
  EXPECT_TRUE(contains(plain.body, "the console is a WebSocket"));

  std::string key(4, '\0');
  EXPECT_EQ(closeCodeAfterSending(daemon, std::string("\x82\x03") + "abc"), 1002) << "an unmasked frame";
  EXPECT_EQ(closeCodeAfterSending(daemon, std::string("\x82\xff\0\0\x01\0\0\0\0\0", 10) + key), 1009)
      << "a 1 TiB frame";
  EXPECT_EQ(closeCodeAfterSending(daemon, std::string("\x82\xfe\x00\x80", 4) + key + "# " + std::string(125, 'a') + "\n" +
                                              std::string("\x82\xff\0\0\0\0\0\x01\0\x01", 10) + key),
            1009)
      << "a message of 64 KiB + 1 after a good one";
  EXPECT_EQ(closeCodeAfterSending(daemon, std::string(64, '\xff')), 1002) << "garbage";
  EXPECT_EQ(closeCodeAfterSending(daemon, std::string("\x89\xfe\x00\xc8", 4)), 1002) << "a 200-byte ping";

  // The daemon and the guest go on: a new viewer gets answers, the API still serves.
  ConsoleViewer after(daemon, "guest");
  ASSERT_TRUE(after.open()) << after.refusal();
  after.type("echo still-$((40+2))\n");
  EXPECT_TRUE(after.waitFor("still-42")) << after.text();
  EXPECT_EQ(daemon.call("GET", "/vms/guest").second["state"], "running");
}

int freeTcpPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), size);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  ::close(fd);
  return ntohs(address.sin_port);
}

// The TLS listener serves what the UNIX socket does. A stock WebSocket client
// (python3-websocket) checks the daemon's certificate against the CA file made
// here, sends the bearer token and types into its tenant's guest over wss://;
// a wrong token and another tenant's token are refused before any console
// byte. The dashboard comes over https from the same listener.
TEST(DaemonConsole, AnswersAStockWssClientOverTlsWithTheSameTokenChecks) {
  std::string address = "127.0.0.1:" + std::to_string(freeTcpPort());
  std::string dir = temporaryPath("contls");
  DaemonProcess daemon("contls",
                       {"--listen", "tcp:" + address, "--tls-cert", dir + "/cert.pem", "--tls-key", dir + "/key.pem"},
                       makeSelfSignedCertificate);
  std::string acme = daemon.newTenantToken("acme"), other = daemon.newTenantToken("other");
  startGuest(daemon, "guest", "acme");
  auto console = [&](const std::string& token, const std::string& line, const std::string& expected) {
    return runShell("/usr/bin/python3 " STRATA_SOURCE_DIR "/tests/integration/tls_console.py wss://" + address +
                    "/vms/guest/console " + dir + "/cert.pem " + token + " '" + line + "' " + expected + " 2>&1");
  };
  auto typed = console(acme, "echo tls-$((6*7))", "tls-42");
  EXPECT_EQ(typed.exitCode, 0);
  EXPECT_EQ(typed.output, "answered tls-42\n");
  EXPECT_EQ(console("strata_0000", "echo no", "no").output, "refused 401\n");
  EXPECT_EQ(console(other, "echo no", "no").output, "refused 404\n") << "another tenant's VM does not exist for it";
  auto admin = console(daemon.adminToken(), "echo admin-$((2*3))", "admin-6");
  EXPECT_EQ(admin.output, "answered admin-6\n");

  auto page = runShell("curl -s --cacert " + dir + "/cert.pem -w ' %{http_code}' https://" + address + "/ui/");
  EXPECT_TRUE(contains(page.output, "<title>strata</title>")) << page.output;
  EXPECT_TRUE(contains(page.output, " 200")) << page.output;
  EXPECT_EQ(daemon.call("GET", "/vms/guest").second["state"], "running");

  auto noKey = runShell(strataBinary() + " daemon --data-dir " + dir + "k --socket " + dir + "k.sock --listen tcp:" +
                        address + " --tls-cert " + dir + "/cert.pem --tls-key " + dir + "/missing.pem 2>&1");
  EXPECT_EQ(noKey.exitCode, 1);
  EXPECT_TRUE(contains(noKey.output, "--tls-cert/--tls-key: " + dir + "/missing.pem: No such file")) << noKey.output;
}

// tests/integration/browser_console.py logs in, presses Start, types into the
// console and reads the answer back in Chromium; the screenshot stays in the build directory.
TEST(DaemonDashboard, StartsAVmAndAnswersOnItsConsoleInHeadlessChromium) {
  std::string listen = "127.0.0.1:" + std::to_string(freeTcpPort());
  DaemonProcess daemon("web", {"--web-listen", listen});
  ASSERT_EQ(daemon.call("POST", "/vms", {{"name", "web"}, {"cpus", 1}}).first, 201);
  std::string screenshot = std::filesystem::path(strataBinary()).parent_path() / "dashboard-screenshot.png";
  std::filesystem::remove(screenshot);
  auto browser = runShell("/usr/bin/python3 " STRATA_SOURCE_DIR "/tests/integration/browser_console.py http://" +
                          listen + "/ui/ " + daemon.adminToken() + " web " + screenshot + " 2>&1");
  if (browser.exitCode == 77) GTEST_SKIP() << "no browser test: " << browser.output;
  EXPECT_EQ(browser.exitCode, 0) << browser.output;
  EXPECT_TRUE(contains(browser.output, "console answered web-42 in the browser"));
  EXPECT_GT(std::filesystem::file_size(screenshot), 10000u);
  EXPECT_EQ(daemon.call("GET", "/vms/web").second["state"], "running");
}

}  // namespace
}  // namespace strata::test
