#include "machine/uart16550.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "recording_irq_line.h"

namespace strata::machine {
namespace {

using testing::RecordingIrqLine;

class UartTest : public ::testing::Test {
 protected:
  UartTest()
      : uart_(irq_, [this](const uint8_t* data, size_t length) { output_.append(data, data + length); }) {}

  uint8_t in(Uart16550::Register reg) { return static_cast<uint8_t>(uart_.read(reg, 1)); }
  void out(Uart16550::Register reg, uint8_t value) { uart_.write(reg, 1, value); }
  void push(const std::string& text) {
    uart_.pushInput(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  }

  RecordingIrqLine irq_;
  std::string output_;
  Uart16550 uart_;
};

TEST_F(UartTest, TransmittedBytesReachTheOutputInOrder) {
  for (char c : std::string("hello\n")) out(Uart16550::kRbrThrDll, static_cast<uint8_t>(c));
  uart_.flushOutput();
  EXPECT_EQ(output_, "hello\n");
  EXPECT_TRUE(irq_.levels().empty());  // no interrupts enabled
}

// Linux's console write: an LSR poll before each THR write, an IER write at the end.
TEST_F(UartTest, OutputIsHeldUntilTheGuestEndsItsBurst) {
  for (char c : std::string("boot log\n")) {
    EXPECT_EQ(in(Uart16550::kLsr) & Uart16550::kLsrThrEmpty, Uart16550::kLsrThrEmpty);
    out(Uart16550::kRbrThrDll, static_cast<uint8_t>(c));
  }
  EXPECT_EQ(output_, "");
  out(Uart16550::kIerDlm, 0);
  EXPECT_EQ(output_, "boot log\n");
  out(Uart16550::kRbrThrDll, '$');
  EXPECT_EQ(in(Uart16550::kIirFcr), 0x01);  // any other access ends a burst too
  EXPECT_EQ(output_, "boot log\n$");
}

TEST_F(UartTest, AFullBatchIsHandedOnWithoutWaiting) {
  for (size_t i = 0; i < Uart16550::kOutputBatchBytes - 1; ++i) out(Uart16550::kRbrThrDll, 'a' + i % 26);
  EXPECT_EQ(output_, "");
  out(Uart16550::kRbrThrDll, '!');
  ASSERT_EQ(output_.size(), Uart16550::kOutputBatchBytes);
  EXPECT_EQ(output_.substr(0, 3), "abc");
  EXPECT_EQ(output_.back(), '!');
}

TEST_F(UartTest, HostFlushFromAnotherThreadHandsOnPendingBytes) {
  out(Uart16550::kRbrThrDll, 'x');
  std::thread([this] { uart_.flushOutput(); }).join();
  EXPECT_EQ(output_, "x");
  uart_.flushOutput();  // nothing pending: nothing repeated
  EXPECT_EQ(output_, "x");
}

TEST_F(UartTest, ResetStateAsLinuxExpects) {
  EXPECT_EQ(in(Uart16550::kLsr), 0x60);  // THRE | TEMT, no data
  EXPECT_EQ(in(Uart16550::kIirFcr), 0x01);  // no interrupt, FIFOs off
  EXPECT_EQ(in(Uart16550::kIerDlm), 0x00);
  EXPECT_EQ(in(Uart16550::kMsr), 0xb0);  // DCD | DSR | CTS
  EXPECT_EQ(in(Uart16550::kRbrThrDll), 0x00);  // empty receiver
}

TEST_F(UartTest, ScratchRegisterHoldsAnyByte) {
  out(Uart16550::kScr, 0xa5);
  EXPECT_EQ(in(Uart16550::kScr), 0xa5);
  out(Uart16550::kScr, 0x5a);
  EXPECT_EQ(in(Uart16550::kScr), 0x5a);
}

TEST_F(UartTest, DivisorLatchOverlaysDataAndIer) {
  out(Uart16550::kIerDlm, 0x03);
  out(Uart16550::kLcr, 0x83);  // DLAB, 8N1
  EXPECT_EQ(in(Uart16550::kLcr), 0x83);
  out(Uart16550::kRbrThrDll, 0x01);  // divisor 0x0201: not transmitted
  out(Uart16550::kIerDlm, 0x02);
  EXPECT_EQ(in(Uart16550::kRbrThrDll), 0x01);
  EXPECT_EQ(in(Uart16550::kIerDlm), 0x02);
  EXPECT_TRUE(output_.empty());
  out(Uart16550::kLcr, 0x03);
  EXPECT_EQ(in(Uart16550::kIerDlm), 0x03);  // IER kept its value
  out(Uart16550::kLcr, 0x80);
  EXPECT_EQ(in(Uart16550::kRbrThrDll), 0x01);
  EXPECT_EQ(in(Uart16550::kIerDlm), 0x02);
}

TEST_F(UartTest, FifoEnableShowsInIirTopBits) {
  out(Uart16550::kIirFcr, 0x07);  // enable and reset FIFOs
  EXPECT_EQ(in(Uart16550::kIirFcr), 0xc1);
  out(Uart16550::kIirFcr, 0x00);
  EXPECT_EQ(in(Uart16550::kIirFcr), 0x01);
}

TEST_F(UartTest, ThreInterruptRaisedByEnableClearedByIirRead) {
  out(Uart16550::kIerDlm, Uart16550::kIerTransmitterEmpty);
  EXPECT_TRUE(irq_.level());
  EXPECT_EQ(in(Uart16550::kIirFcr), 0x02);
  EXPECT_FALSE(irq_.level());
  EXPECT_EQ(in(Uart16550::kIirFcr), 0x01);  // acknowledged

  // Writing THR: the byte leaves at once and THR is empty again.
  out(Uart16550::kRbrThrDll, 'x');
  EXPECT_TRUE(irq_.level());
  EXPECT_EQ(in(Uart16550::kIirFcr), 0x02);
  EXPECT_FALSE(irq_.level());

  // Linux's THRE test: toggling ETBEI re-raises it while THR is empty.
  out(Uart16550::kIerDlm, 0);
  out(Uart16550::kIerDlm, Uart16550::kIerTransmitterEmpty);
  EXPECT_EQ(in(Uart16550::kIirFcr), 0x02);
  // Rewriting the same IER value does not.
  out(Uart16550::kIerDlm, Uart16550::kIerTransmitterEmpty);
  EXPECT_EQ(in(Uart16550::kIirFcr), 0x01);
  out(Uart16550::kIerDlm, 0);
  EXPECT_EQ(irq_.levels(), (std::vector<bool>{true, false, true, false, true, false}));
}

TEST_F(UartTest, ReceivedDataInterruptOutranksThre) {
  out(Uart16550::kIirFcr, 0x01);
  out(Uart16550::kIerDlm, Uart16550::kIerReceivedData | Uart16550::kIerTransmitterEmpty);
  push("ab");
  EXPECT_TRUE(irq_.level());
  EXPECT_EQ(in(Uart16550::kLsr), 0x61);
  EXPECT_EQ(in(Uart16550::kIirFcr), 0xc4);  // received data first
  EXPECT_EQ(in(Uart16550::kRbrThrDll), 'a');
  EXPECT_EQ(in(Uart16550::kRbrThrDll), 'b');
  EXPECT_EQ(in(Uart16550::kLsr), 0x60);
  EXPECT_TRUE(irq_.level());                // THRE still latched
  EXPECT_EQ(in(Uart16550::kIirFcr), 0xc2);  // now THRE, which the read clears
  EXPECT_FALSE(irq_.level());
}

TEST_F(UartTest, ReceivedDataInterruptFollowsDataReady) {
  out(Uart16550::kIerDlm, Uart16550::kIerReceivedData);
  push("z");
  EXPECT_EQ(irq_.levels(), (std::vector<bool>{true}));
  EXPECT_EQ(in(Uart16550::kIirFcr), 0x04);
  EXPECT_EQ(in(Uart16550::kIirFcr), 0x04);  // reading IIR does not clear it
  EXPECT_EQ(in(Uart16550::kRbrThrDll), 'z');
  EXPECT_EQ(irq_.levels(), (std::vector<bool>{true, false}));
  EXPECT_EQ(in(Uart16550::kIirFcr), 0x01);
}

TEST_F(UartTest, WithoutErbfiDataArrivesAfterLsrPollsAndRaisesNoIrq) {
  push("qr");
  for (unsigned poll = 1; poll < Uart16550::kPollsBeforeArrival; ++poll) {
    EXPECT_EQ(in(Uart16550::kLsr), 0x60) << "poll " << poll;
  }
  EXPECT_EQ(in(Uart16550::kLsr), 0x61);
  EXPECT_EQ(in(Uart16550::kLsr), 0x61);
  EXPECT_TRUE(irq_.levels().empty());
  EXPECT_EQ(in(Uart16550::kRbrThrDll), 'q');
  EXPECT_EQ(in(Uart16550::kLsr), 0x60);  // the next byte needs polling again
  out(Uart16550::kIerDlm, Uart16550::kIerReceivedData);  // ... or the interrupt enabled
  EXPECT_EQ(in(Uart16550::kLsr), 0x61);
  EXPECT_TRUE(irq_.level());
  EXPECT_EQ(in(Uart16550::kRbrThrDll), 'r');
  EXPECT_FALSE(irq_.level());
}

TEST_F(UartTest, BlindReceiverReadsDoNotConsumeQueuedInput) {
  push("xy");
  EXPECT_EQ(in(Uart16550::kLsr), 0x60);
  EXPECT_EQ(in(Uart16550::kRbrThrDll), 0x00);
  EXPECT_EQ(in(Uart16550::kRbrThrDll), 0x00);
  EXPECT_EQ(uart_.pendingInput(), 2u);
}

TEST_F(UartTest, ArrivedByteStaysReadyWhenErbfiIsTurnedOff) {
  push("m");
  out(Uart16550::kIerDlm, Uart16550::kIerReceivedData);
  out(Uart16550::kIerDlm, 0);
  EXPECT_EQ(in(Uart16550::kLsr), 0x61);
  EXPECT_EQ(in(Uart16550::kRbrThrDll), 'm');
}

// The register accesses of Linux 6.1's serial8250_do_startup and set_termios
// for a 16550A, with console input already queued: none of it may be lost.
TEST_F(UartTest, LinuxPortStartupLosesNoQueuedInput) {
  push("echo hi\n");
  // serial8250_clear_fifos
  out(Uart16550::kIirFcr, 0x01);
  out(Uart16550::kIirFcr, 0x07);
  out(Uart16550::kIirFcr, 0x00);
  // clear interrupt registers, LSR safety check
  in(Uart16550::kLsr);
  in(Uart16550::kRbrThrDll);
  in(Uart16550::kIirFcr);
  in(Uart16550::kMsr);
  EXPECT_NE(in(Uart16550::kLsr), 0xff);
  // THRE test
  in(Uart16550::kLsr);
  out(Uart16550::kIerDlm, Uart16550::kIerTransmitterEmpty);
  const uint8_t iir1 = in(Uart16550::kIirFcr);
  out(Uart16550::kIerDlm, 0);
  out(Uart16550::kIerDlm, Uart16550::kIerTransmitterEmpty);
  const uint8_t iir2 = in(Uart16550::kIirFcr);
  out(Uart16550::kIerDlm, 0);
  EXPECT_EQ(iir1 & 0x01, 0);  // a THRE interrupt both times: no UART_BUG_THRE
  EXPECT_EQ(iir2 & 0x01, 0);
  // initialise, clear again for luck
  out(Uart16550::kLcr, 0x03);
  out(Uart16550::kMcr, 0x0b);
  in(Uart16550::kLsr);
  in(Uart16550::kRbrThrDll);
  in(Uart16550::kIirFcr);
  in(Uart16550::kMsr);
  // set_termios: divisor, FIFO, then the receive interrupts
  out(Uart16550::kLcr, 0x83);
  out(Uart16550::kRbrThrDll, 0x02);
  out(Uart16550::kIerDlm, 0x00);
  out(Uart16550::kLcr, 0x03);
  out(Uart16550::kIirFcr, 0x01);
  out(Uart16550::kIirFcr, 0x81);
  EXPECT_EQ(uart_.pendingInput(), 8u);
  out(Uart16550::kIerDlm, 0x05);  // RLSI | RDI
  EXPECT_TRUE(irq_.level());

  std::string received;
  while (in(Uart16550::kLsr) & Uart16550::kLsrDataReady) {
    received.push_back(static_cast<char>(in(Uart16550::kRbrThrDll)));
  }
  EXPECT_EQ(received, "echo hi\n");
  EXPECT_FALSE(irq_.level());
  EXPECT_TRUE(output_.empty());
}

TEST_F(UartTest, LargeInputIsDeliveredExactlyAndInOrder) {
  std::vector<uint8_t> data(1 << 20);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>((i * 131 + i / 256) & 0xff);
  uart_.pushInput(data.data(), data.size());
  EXPECT_EQ(uart_.pendingInput(), data.size());
  out(Uart16550::kIerDlm, Uart16550::kIerReceivedData);

  std::vector<uint8_t> received;
  received.reserve(data.size());
  while (in(Uart16550::kLsr) & Uart16550::kLsrDataReady) {
    EXPECT_TRUE(irq_.level());
    received.push_back(in(Uart16550::kRbrThrDll));
  }
  EXPECT_FALSE(irq_.level());
  EXPECT_EQ(received.size(), data.size());
  EXPECT_TRUE(received == data);
  EXPECT_EQ(uart_.pendingInput(), 0u);
}

// Polling with the receive interrupt off, while the I/O thread keeps pushing.
TEST_F(UartTest, InputFromAnotherThreadWhileTheGuestPolls) {
  constexpr size_t kChunks = 200;
  constexpr size_t kChunkSize = 1000;
  std::thread producer([this] {
    std::vector<uint8_t> chunk(kChunkSize);
    for (size_t c = 0; c < kChunks; ++c) {
      for (size_t i = 0; i < kChunkSize; ++i) chunk[i] = static_cast<uint8_t>(c * kChunkSize + i);
      uart_.pushInput(chunk.data(), chunk.size());
    }
  });
  size_t count = 0;
  bool inOrder = true;
  while (count < kChunks * kChunkSize) {
    if (!(in(Uart16550::kLsr) & Uart16550::kLsrDataReady)) continue;
    inOrder &= in(Uart16550::kRbrThrDll) == static_cast<uint8_t>(count);
    ++count;
  }
  producer.join();
  EXPECT_TRUE(inOrder);
  EXPECT_EQ(uart_.pendingInput(), 0u);
}

TEST_F(UartTest, FifoResetKeepsQueuedHostInput) {
  push("keep");
  out(Uart16550::kIerDlm, Uart16550::kIerReceivedData);
  EXPECT_EQ(in(Uart16550::kLsr), 0x61);
  out(Uart16550::kIerDlm, 0);
  out(Uart16550::kIirFcr, 0x07);  // the arrived 'k' goes back to the queue
  EXPECT_EQ(in(Uart16550::kLsr), 0x60);
  EXPECT_EQ(in(Uart16550::kRbrThrDll), 0x00);
  EXPECT_EQ(uart_.pendingInput(), 4u);
  out(Uart16550::kIerDlm, Uart16550::kIerReceivedData);
  EXPECT_EQ(in(Uart16550::kRbrThrDll), 'k');
  EXPECT_EQ(uart_.pendingInput(), 3u);
}

TEST_F(UartTest, LoopbackReflectsModemControlInMsr) {
  out(Uart16550::kMcr, Uart16550::kMcrLoopback | 0x0a);  // OUT2 | RTS
  EXPECT_EQ(in(Uart16550::kMsr) & 0xf0, 0x90);           // DCD | CTS
  out(Uart16550::kMcr, Uart16550::kMcrLoopback | 0x05);  // OUT1 | DTR
  EXPECT_EQ(in(Uart16550::kMsr) & 0xf0, 0x60);           // RI | DSR
  out(Uart16550::kMcr, 0xff);
  EXPECT_EQ(in(Uart16550::kMcr), 0x1f);
}

TEST_F(UartTest, UnimplementedOffsetsAreHarmless) {
  uart_.write(8, 1, 0x55);
  uart_.write(0xff, 1, 0x55);
  EXPECT_EQ(uart_.read(8, 1), 0u);
  EXPECT_EQ(uart_.read(uint64_t{1} << 50, 4), 0u);
  out(Uart16550::kLsr, 0);  // read-only
  EXPECT_EQ(in(Uart16550::kLsr), 0x60);
  EXPECT_TRUE(output_.empty());
}

}  // namespace
}  // namespace strata::machine
