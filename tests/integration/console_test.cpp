// The host side of the console: output to a file, the Ctrl-A x escape on a
// real terminal, and piped input that arrives long before the guest reads it.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "guest_runner.h"

namespace strata::test {
namespace {

TEST(Console, FileConsoleReceivesGuestOutput) {
  // With the console in a file there is no input; an init that exits at once
  // makes the kernel panic, which ends the VM with status 1.
  std::string log = temporaryPath("console.log");
  auto run = runStrata({"--console", "file=" + log, "--append", "console=ttyS0 rdinit=/bin/false"}, "");
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 1) << run.output;
  std::stringstream file;
  file << std::ifstream(log).rdbuf();
  EXPECT_TRUE(contains(file.str(), "Linux version 6.1"));
  EXPECT_TRUE(contains(file.str(), "Attempted to kill init"));
  EXPECT_EQ(run.output.find("Linux version"), std::string::npos) << "console output leaked to stdout";
}

TEST(Console, CtrlAXQuitsFromATerminal) {
  auto run = runShell("printf '\\001x' | timeout 60 script -qec '" + strataBinary() + " run' /dev/null");
  EXPECT_EQ(run.exitCode, 0) << run.output;
}

TEST(Console, LargePipedInputIsDeliveredWithoutLoss) {
  // 400 commands queued before the guest boots; each prints a computed value.
  // Echo is switched off first: the terminal would otherwise echo input that
  // arrives while a command prints, splitting its output line.
  std::string input = "stty -echo\n";
  for (int i = 0; i < 400; ++i) input += "echo v$((" + std::to_string(i) + "*3))\n";
  input += "poweroff\n";
  auto run = runStrata({}, input);
  ASSERT_FALSE(run.timedOut) << run.output.substr(run.output.size() > 4000 ? run.output.size() - 4000 : 0);
  EXPECT_EQ(run.exitCode, 0);
  for (int i = 0; i < 400; ++i) {
    std::string expected = "# v" + std::to_string(i * 3) + "\r\n";  // after the shell prompt
    ASSERT_NE(run.output.find(expected), std::string::npos) << "missing output of command " << i;
  }
}

TEST(Console, PtyConsoleServesTheGuestShell) {
  // strata announces the pseudo-terminal on stderr; a shell client opens it,
  // types two commands and reads the guest's answer back from the same pty.
  std::string err = temporaryPath("pty.err"), out = temporaryPath("pty.out");
  std::string script =
      strataBinary() + " run --console pty 2>" + err + " & vm=$!\n"
      "for i in $(seq 100); do grep -q 'console on' " + err + " && break; sleep 0.1; done\n"
      "pty=$(sed -n 's/.*console on //p' " + err + ")\n"
      "exec 3<>\"$pty\"\n"
      "timeout 120 cat <&3 > " + out + " & reader=$!\n"
      "sleep 3; printf 'echo pty-$((2*4))\\npoweroff\\n' >&3\n"
      "timeout 120 sh -c \"while kill -0 $vm 2>/dev/null; do sleep 0.2; done\"; wait $vm; status=$?\n"
      "kill $reader 2>/dev/null; exit $status\n";
  auto run = runShell(script);
  EXPECT_EQ(run.exitCode, 0) << run.output;
  auto seen = runShell("cat " + out);
  EXPECT_TRUE(contains(seen.output, "pty-8"));
}

TEST(Console, BadConsoleOptionIsRejected) {
  auto run = runStrata({"--console", "serial"}, "");
  EXPECT_EQ(run.exitCode, 2) << run.output;
  EXPECT_TRUE(contains(run.output, "--console serial: expected stdio, pty or file=PATH"));
}

}  // namespace
}  // namespace strata::test
