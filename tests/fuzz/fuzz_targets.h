// The fuzz targets' entry points, shared by the libFuzzer binaries (built with
// clang when STRATA_FUZZ=ON) and by fuzz_regression, which replays the
// committed corpus through them with the normal compiler as a CTest test.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace strata::fuzz {

// Writes the bytes to a file and opens it as qcow2 through openDiskImage, read-only
// and then read-write, reading, writing and querying block status on what opens.
int qcow2ImageOneInput(const uint8_t* data, size_t size);

// Feeds the bytes to an in-process NBD server as one client over a socketpair.
// Odd first byte: a valid handshake (structured replies, base:allocation, NBD_OPT_GO)
// is sent first, so the rest exercises the transmission phase.
int nbdServerOneInput(const uint8_t* data, size_t size);

// The same against a server that requires TLS (X.509, a certificate made at
// start). The first byte picks how the client plays it: bit 1 clear: the bytes
// arrive in the clear, after client flags and NBD_OPT_STARTTLS if bit 2 is set
// (so they feed the TLS handshake); bit 1 set: a real GnuTLS client upgrades to
// TLS, then (bit 0) negotiates an export, then sends the bytes encrypted (or raw
// with bit 2, breaking the record stream), ending with a close_notify if bit 3 is set.
int nbdTlsServerOneInput(const uint8_t* data, size_t size);

// A program of guest actions against virtio-blk, -net, -console and -rng behind
// their MMIO transports: guest RAM writes, register accesses, driver set-up,
// descriptor chains, notifications, I/O loop turns, backend events (see
// virtio_devices_target.cpp for the encoding).
int virtioDevicesOneInput(const uint8_t* data, size_t size);

// Aligned register reads and writes, as a hart issues them, through the Bus to
// every device of the `virt` board: PLIC, CLINT, UART, RTC, pvpanic, the test
// finisher and four virtio-mmio transports.
int boardMmioOneInput(const uint8_t* data, size_t size);

// SBI calls (a0-a7) made by the harts of a 1-4 hart machine to machine::Sbi.
int sbiOneInput(const uint8_t* data, size_t size);

// The bytes as a kernel (Image or ELF), firmware or bare-metal ELF file, with
// an initrd after the kernel, loaded into a small guest RAM as GuestMachine does.
int bootLoaderOneInput(const uint8_t* data, size_t size);

// A DeviceTreeSpec decoded from the bytes; a built tree must pass libfdt's checks.
int deviceTreeOneInput(const uint8_t* data, size_t size);

// The volume manager's on-disk decoders: PV label, pool metadata slot,
// write-intent header, thin superblock, checkpoint and journal (checksums are
// usually fixed up first so the parsers behind them are reached).
int volumeMetadataOneInput(const uint8_t* data, size_t size);

// `strata image check` (storage::checkImage) on the bytes as an image file.
int imageCheckOneInput(const uint8_t* data, size_t size);

// The bytes as a JSON VM spec through the daemon's validation (control::parseVmSpec).
int vmSpecOneInput(const uint8_t* data, size_t size);
// The bytes as a controller's stream to the switch's OpenFlow 1.3 session (then frames meet its rules).
int openFlowOneInput(const uint8_t* data, size_t size);
// A virtio_net_hdr and a frame as a guest or a switch peer sends them: decoded,
// moved as by a tag push, then finished (checksum, TCP segmentation) for the
// offloads the first byte says the receiving port takes.
int netOffloadOneInput(const uint8_t* data, size_t size);
// A console WebSocket client's bytes through the daemon's frame reader (control::websocket::Reader).
int websocketOneInput(const uint8_t* data, size_t size);
// The bytes as one client connection to the daemon's public socket (WebFront, then ApiServer's httplib
// parser and routes) with a real store; replies must be HTTP, errors JSON, and come within the deadline.
int httpRequestOneInput(const uint8_t* data, size_t size);

// The targets by the name fuzz_regression and the libFuzzer binaries use; nullptr if unknown.
using OneInput = int (*)(const uint8_t* data, size_t size);
OneInput findTarget(std::string_view name);
// The known names, space separated, for usage messages.
std::string targetNames();

}  // namespace strata::fuzz
