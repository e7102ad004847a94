// Constants from the virtio 1.2 specification shared by the transport, the
// virtqueue and the devices: device status bits, transport feature bits,
// device type ids and the split-ring descriptor flags.
#pragma once

#include <cstdint>

namespace strata::virtio {

// Device status register (spec 2.1).
inline constexpr uint32_t kStatusAcknowledge = 1;
inline constexpr uint32_t kStatusDriver = 2;
inline constexpr uint32_t kStatusDriverOk = 4;
inline constexpr uint32_t kStatusFeaturesOk = 8;
inline constexpr uint32_t kStatusDeviceNeedsReset = 0x40;
inline constexpr uint32_t kStatusFailed = 0x80;

// Reserved feature bits handled by the transport/virtqueue (spec 6).
inline constexpr unsigned kFeatureIndirectDesc = 28;
inline constexpr unsigned kFeatureEventIdx = 29;
inline constexpr unsigned kFeatureVersion1 = 32;

inline constexpr uint64_t featureBit(unsigned bit) { return uint64_t{1} << bit; }

// Device type ids (spec 5).
inline constexpr uint32_t kDeviceIdNet = 1;
inline constexpr uint32_t kDeviceIdBlock = 2;
inline constexpr uint32_t kDeviceIdConsole = 3;
inline constexpr uint32_t kDeviceIdEntropy = 4;
inline constexpr uint32_t kDeviceIdBalloon = 5;

// Split virtqueue layout (spec 2.7).
inline constexpr uint16_t kDescFlagNext = 1;
inline constexpr uint16_t kDescFlagWrite = 2;
inline constexpr uint16_t kDescFlagIndirect = 4;
inline constexpr uint16_t kAvailFlagNoInterrupt = 1;
inline constexpr uint32_t kMaxQueueSize = 32768;

// Interrupt status bits (virtio-mmio InterruptStatus).
inline constexpr uint32_t kInterruptUsedBuffer = 1;
inline constexpr uint32_t kInterruptConfigChange = 2;

}  // namespace strata::virtio
