#include "machine/uart16550.h"

namespace strata::machine {

namespace {

constexpr uint8_t kIerMask = 0x0f;  // ERBFI, ETBEI, ELSI, EDSSI
constexpr uint8_t kMcrMask = 0x1f;
constexpr uint8_t kFcrClearReceive = 0x02;
constexpr uint8_t kFcrStoredBits = 0xc9;  // enable, DMA mode, trigger level

// MSR bits.
constexpr uint8_t kMsrClearToSend = 0x10;
constexpr uint8_t kMsrDataSetReady = 0x20;
constexpr uint8_t kMsrRingIndicator = 0x40;
constexpr uint8_t kMsrCarrierDetect = 0x80;

// MCR bits.
constexpr uint8_t kMcrDataTerminalReady = 0x01;
constexpr uint8_t kMcrRequestToSend = 0x02;
constexpr uint8_t kMcrOut1 = 0x04;
constexpr uint8_t kMcrOut2 = 0x08;

}  // namespace

Uart16550::Uart16550(IrqLine& irq, OutputFn output) : irq_(irq), output_(std::move(output)) {}

uint8_t Uart16550::interruptIdentificationLocked() const {
  // Priority order of the 16550: line status (never raised: no errors are
  // modelled), received data, THR empty, modem status (no deltas modelled).
  // Received data is reported as soon as any byte is ready, as if the FIFO
  // trigger level or the character timeout had been reached at once.
  const uint8_t fifoBits = (fcr_ & kFcrEnableFifo) ? kIirFifosEnabled : 0;
  if ((ier_ & kIerReceivedData) && rxVisible_) return kIirReceivedData | fifoBits;
  if ((ier_ & kIerTransmitterEmpty) && thrInterruptPending_) return kIirTransmitterEmpty | fifoBits;
  return kIirNoInterrupt | fifoBits;
}

uint8_t Uart16550::lineStatusLocked() const {
  // The transmitter is always idle: bytes leave the moment THR is written.
  uint8_t status = kLsrThrEmpty | kLsrTransmitterEmpty;
  if (rxVisible_) status |= kLsrDataReady;
  return status;
}

uint8_t Uart16550::modemStatusLocked() const {
  if (mcr_ & kMcrLoopback) {
    // Loopback wires the modem control outputs back to the status inputs;
    // Linux's 8250 probe checks this.
    uint8_t status = 0;
    if (mcr_ & kMcrDataTerminalReady) status |= kMsrDataSetReady;
    if (mcr_ & kMcrRequestToSend) status |= kMsrClearToSend;
    if (mcr_ & kMcrOut1) status |= kMsrRingIndicator;
    if (mcr_ & kMcrOut2) status |= kMsrCarrierDetect;
    return status;
  }
  // A connected terminal: carrier, data set ready and clear to send.
  return kMsrCarrierDetect | kMsrDataSetReady | kMsrClearToSend;
}

void Uart16550::refreshArrivalLocked() {
  if (rxVisible_ || input_.empty()) return;
  rxVisible_ = (ier_ & kIerReceivedData) || lsrPollsSinceRead_ >= kPollsBeforeArrival;
}

void Uart16550::updateIrqLocked() {
  const bool asserted = !(interruptIdentificationLocked() & kIirNoInterrupt);
  if (asserted == irqAsserted_) return;
  irqAsserted_ = asserted;
  irq_.setLevel(asserted);
}

void Uart16550::setInterruptEnableLocked(uint8_t value) {
  const uint8_t changed = (ier_ ^ value) & kIerMask;
  ier_ = value & kIerMask;
  // Switching ETBEI on while THR is empty raises the THRE interrupt again even
  // if an IIR read cleared it (real 16550s do; Linux's THRE test relies on it).
  if (changed & kIerTransmitterEmpty) thrInterruptPending_ = (ier_ & kIerTransmitterEmpty) != 0;
  refreshArrivalLocked();
  updateIrqLocked();
}

void Uart16550::writeFifoControlLocked(uint8_t value) {
  // The other bits only take effect with the FIFO enable bit set. The
  // transmit FIFO is always empty; a receive reset (explicit, or implied by
  // toggling the enable) returns the arrived byte to the host queue rather
  // than discarding it (see rxVisible_ in the header).
  const bool enableToggled = (value ^ fcr_) & kFcrEnableFifo;
  if ((value & kFcrClearReceive) || enableToggled) {
    rxVisible_ = false;
    lsrPollsSinceRead_ = 0;
    refreshArrivalLocked();
  }
  fcr_ = (value & kFcrEnableFifo) ? (value & kFcrStoredBits) : 0;
  updateIrqLocked();
}

void Uart16550::queueOutputLocked(uint8_t byte) {
  pendingOutput_.push_back(byte);
  outputPending_.store(true, std::memory_order_relaxed);
  if (pendingOutput_.size() >= kOutputBatchBytes) flushOutputLocked();
}

void Uart16550::flushOutputLocked() {
  if (pendingOutput_.empty()) return;
  if (output_) output_(pendingOutput_.data(), pendingOutput_.size());
  pendingOutput_.clear();
  outputPending_.store(false, std::memory_order_relaxed);
}

void Uart16550::flushOutput() {
  if (!outputPending_.load(std::memory_order_relaxed)) return;
  std::lock_guard transmitLock(transmitMutex_);
  flushOutputLocked();
}

uint64_t Uart16550::read(uint64_t offset, unsigned /*size*/) {
  if (offset != kLsr) flushOutput();  // the burst is over
  std::lock_guard lock(mutex_);
  switch (offset) {
    case kRbrThrDll: {
      if (divisorLatchLocked()) return divisorLow_;
      lsrPollsSinceRead_ = 0;
      if (!rxVisible_) return 0;  // an empty receiver: nothing is consumed
      const uint8_t byte = input_.front();
      input_.pop_front();
      rxVisible_ = false;
      refreshArrivalLocked();
      updateIrqLocked();
      return byte;
    }
    case kIerDlm:
      return divisorLatchLocked() ? divisorHigh_ : ier_;
    case kIirFcr: {
      const uint8_t iir = interruptIdentificationLocked();
      // Reading IIR while it reports THRE acknowledges that interrupt.
      if ((iir & 0x0f) == kIirTransmitterEmpty) {
        thrInterruptPending_ = false;
        updateIrqLocked();
      }
      return iir;
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr:
      if (lsrPollsSinceRead_ < kPollsBeforeArrival) ++lsrPollsSinceRead_;
      if (!rxVisible_) {
        refreshArrivalLocked();
        updateIrqLocked();
      }
      return lineStatusLocked();
    case kMsr:
      return modemStatusLocked();
    case kScr:
      return scr_;
    default:
      return 0;
  }
}

void Uart16550::write(uint64_t offset, unsigned /*size*/, uint64_t value) {
  const uint8_t byte = static_cast<uint8_t>(value);
  if (offset == kRbrThrDll) {
    std::lock_guard transmitLock(transmitMutex_);
    {
      std::lock_guard lock(mutex_);
      if (divisorLatchLocked()) {
        divisorLow_ = byte;
        return;
      }
      // Writing THR acknowledges THRE; the byte leaves at once, so THR is
      // empty again and the interrupt re-arms.
      thrInterruptPending_ = true;
      updateIrqLocked();
    }
    queueOutputLocked(byte);
    return;
  }
  flushOutput();  // the burst is over
  std::lock_guard lock(mutex_);
  switch (offset) {
    case kIerDlm:
      if (divisorLatchLocked()) {
        divisorHigh_ = byte;
      } else {
        setInterruptEnableLocked(byte);
      }
      break;
    case kIirFcr:
      writeFifoControlLocked(byte);
      break;
    case kLcr:
      lcr_ = byte;
      break;
    case kMcr:
      mcr_ = byte & kMcrMask;
      break;
    case kScr:
      scr_ = byte;
      break;
    default:  // LSR and MSR are read-only
      break;
  }
}

void Uart16550::pushInput(const uint8_t* data, size_t length) {
  if (length == 0) return;
  std::lock_guard lock(mutex_);
  input_.insert(input_.end(), data, data + length);
  refreshArrivalLocked();
  updateIrqLocked();
}

size_t Uart16550::pendingInput() const {
  std::lock_guard lock(mutex_);
  return input_.size();
}

namespace {
constexpr uint32_t kUartStateVersion = 1;
constexpr size_t kMaxSavedInput = 1u << 20;
}

void Uart16550::save(StateWriter& out) const {
  std::lock_guard lock(mutex_);
  out.beginSection("uart", kUartStateVersion);
  for (uint8_t reg : {ier_, lcr_, mcr_, scr_, fcr_, divisorLow_, divisorHigh_}) out.put(reg);
  out.put(static_cast<uint8_t>(thrInterruptPending_));
  out.put(static_cast<uint8_t>(rxVisible_));
  out.put(lsrPollsSinceRead_);
  out.putBytes(std::vector<uint8_t>(input_.begin(), input_.end()));
  out.endSection();
}

Result<void> Uart16550::load(StateReader& in) {
  std::lock_guard lock(mutex_);
  auto version = in.enterSection("uart", kUartStateVersion);
  if (!version) return version.error();
  for (uint8_t* reg : {&ier_, &lcr_, &mcr_, &scr_, &fcr_, &divisorLow_, &divisorHigh_}) *reg = in.get<uint8_t>();
  ier_ &= kIerMask;
  thrInterruptPending_ = in.get<uint8_t>() != 0;
  rxVisible_ = in.get<uint8_t>() != 0;
  lsrPollsSinceRead_ = in.get<unsigned>();
  std::vector<uint8_t> input = in.getBytes(kMaxSavedInput);
  if (auto left = in.leaveSection(); !left) return left;
  input_.assign(input.begin(), input.end());
  rxVisible_ = rxVisible_ && !input_.empty();
  irqAsserted_ = false;
  updateIrqLocked();
  return {};
}

}  // namespace strata::machine
