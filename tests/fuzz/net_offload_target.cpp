#include <array>
#include <cstdlib>
#include <span>
#include <vector>

#include "fuzz_support.h"
#include "fuzz_targets.h"
#include "network/offload.h"

namespace strata::fuzz {

int netOffloadOneInput(const uint8_t* data, size_t size) {
  FuzzInput input(data, size);
  uint8_t capsBits = input.u8();
  network::OffloadCaps caps{(capsBits & 1) != 0, (capsBits & 2) != 0, (capsBits & 4) != 0};
  int shift = (capsBits & 8) ? 4 : 0;  // as if the switch pushed an 802.1Q tag
  std::array<uint8_t, network::kVirtioNetHeaderBytes> header{};
  for (auto& byte : header) byte = input.u8();
  std::vector<uint8_t> frame = input.rest();
  auto offload = network::decodeVirtioNetHeader(header, frame.size());
  if (!offload) return 0;
  offload->shiftHeaders(shift);
  std::array<uint8_t, network::kVirtioNetHeaderBytes> encoded{};
  network::encodeVirtioNetHeader(*offload, encoded);
  // What leaves must be what the caps take, and never larger than what came in.
  (void)network::finishOffloads(frame, *offload, caps,
                                [&](std::span<const uint8_t> out, const network::FrameOffload& done) {
                                  if (out.size() > frame.size() || !caps.accepts(done)) std::abort();
                                });
  return 0;
}

}  // namespace strata::fuzz
