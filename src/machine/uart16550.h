// Uart16550: the `virt` board's console UART, an ns16550a with 8-bit registers
// (reg-shift 0) as Linux's 8250 driver expects. Transmission is instantaneous
// for the guest; the bytes reach the host in batches (see flushOutput); input
// from the host waits in an unbounded queue and reaches the receiver one byte
// at a time as the guest reads, so piped input is never dropped.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "base/result.h"
#include "base/state_stream.h"
#include "machine/mmio_device.h"

namespace strata::machine {

class Uart16550 : public MmioDevice {
 public:
  // Receives every byte the guest transmits, in order, in batches of any length.
  using OutputFn = std::function<void(const uint8_t* data, size_t length)>;

  static constexpr uint64_t kMmioSize = 0x100;

  // Register offsets (reg-shift 0).
  enum Register : uint64_t {
    kRbrThrDll = 0,  // receive buffer / transmit holding / divisor latch low (DLAB)
    kIerDlm = 1,     // interrupt enable / divisor latch high (DLAB)
    kIirFcr = 2,     // interrupt identification (read) / FIFO control (write)
    kLcr = 3,
    kMcr = 4,
    kLsr = 5,
    kMsr = 6,
    kScr = 7,
  };
  // Bits the tests and the driver care about.
  static constexpr uint8_t kIerReceivedData = 0x01;
  static constexpr uint8_t kIerTransmitterEmpty = 0x02;
  static constexpr uint8_t kIirNoInterrupt = 0x01;
  static constexpr uint8_t kIirTransmitterEmpty = 0x02;
  static constexpr uint8_t kIirReceivedData = 0x04;
  static constexpr uint8_t kIirFifosEnabled = 0xc0;
  static constexpr uint8_t kFcrEnableFifo = 0x01;
  static constexpr uint8_t kLcrDivisorLatch = 0x80;
  static constexpr uint8_t kMcrLoopback = 0x10;
  static constexpr uint8_t kLsrDataReady = 0x01;
  static constexpr uint8_t kLsrThrEmpty = 0x20;
  static constexpr uint8_t kLsrTransmitterEmpty = 0x40;

  // The IRQ line and the output function must outlive the UART. The line is
  // driven with the UART's lock held (it must not call back into the UART).
  // The output function runs on the transmitting vCPU's thread without that
  // lock; it may call pushInput() but must not write to the UART's registers.
  Uart16550(IrqLine& irq, OutputFn output);
  Uart16550(const Uart16550&) = delete;
  Uart16550& operator=(const Uart16550&) = delete;

  // Any access size is accepted; only the low byte of a write is used.
  uint64_t read(uint64_t offset, unsigned size) override;
  void write(uint64_t offset, unsigned size, uint64_t value) override;

  // Polls of LSR, with the receive interrupt off, after which the next queued
  // byte reaches the receiver (see rxVisible_).
  static constexpr unsigned kPollsBeforeArrival = 16;

  // Transmitted bytes wait here until the guest ends its burst (any register
  // access other than a THR write or an LSR poll: Linux's console and tty
  // paths both end theirs with an IER write), kOutputBatchBytes are waiting,
  // or flushOutput() (any thread) hands them on. A host write per byte made
  // printing the kernel's boot log a fifth of a boot's time. The machine
  // flushes from every hart's periodic poll and before WFI sleep, and when
  // the VM ends, so bytes never wait on a guest that stops touching the UART.
  static constexpr size_t kOutputBatchBytes = 1024;
  void flushOutput();

  // Queues host input for the guest (any thread). Never drops bytes.
  void pushInput(const uint8_t* data, size_t length);
  // Bytes queued that the guest has not read yet.
  size_t pendingInput() const;

  // Snapshots: the device's registers and latched state (section "uart").
  // Loading re-drives its output lines from the loaded state.
  void save(StateWriter& out) const;
  Result<void> load(StateReader& in);

 private:
  uint8_t interruptIdentificationLocked() const;
  uint8_t lineStatusLocked() const;
  uint8_t modemStatusLocked() const;
  void setInterruptEnableLocked(uint8_t value);
  void writeFifoControlLocked(uint8_t value);
  void updateIrqLocked();
  void refreshArrivalLocked();
  bool divisorLatchLocked() const { return lcr_ & kLcrDivisorLatch; }

  IrqLine& irq_;
  OutputFn output_;

  // Appends a transmitted byte (transmitMutex_ held).
  void queueOutputLocked(uint8_t byte);
  void flushOutputLocked();

  // Serialises transmission so bytes reach output_ in THR write order, without
  // holding mutex_ while output_ runs (it may block on a slow host terminal).
  // Guards outputPending_ and pendingOutput_.
  std::mutex transmitMutex_;
  std::atomic<bool> outputPending_{false};  // flushOutput()'s lock-free "nothing to do"
  std::vector<uint8_t> pendingOutput_;

  mutable std::mutex mutex_;
  // Host input not yet read by the guest. Only its head can be visible.
  std::deque<uint8_t> input_;
  // Whether input_.front() has "arrived" in the receiver (LSR.DR). Drivers
  // routinely do blind reads of RBR to flush the receiver (Linux's 8250
  // startup and shutdown do, with the receive interrupt off), which on a
  // real line only loses noise but here would eat queued console input. So a
  // byte arrives at once while ERBFI is on, and otherwise only after the guest
  // has polled LSR kPollsBeforeArrival times since its last RBR read, as a
  // byte on a slow line would; an RBR read with nothing arrived consumes
  // nothing. A receive-FIFO reset sends the arrived byte back to the queue.
  bool rxVisible_ = false;
  unsigned lsrPollsSinceRead_ = 0;
  uint8_t ier_ = 0;
  uint8_t lcr_ = 0;
  uint8_t mcr_ = 0;
  uint8_t scr_ = 0;
  uint8_t fcr_ = 0;  // FIFO enable and trigger level bits as last written
  uint8_t divisorLow_ = 0;
  uint8_t divisorHigh_ = 0;
  // THRE interrupt latch: set when THR empties or ETBEI is switched on,
  // cleared by reading IIR while it is the reported interrupt or writing THR.
  bool thrInterruptPending_ = false;
  bool irqAsserted_ = false;
};

}  // namespace strata::machine
