#include "network/self_announce.h"

#include <algorithm>

namespace strata::network {

std::vector<uint8_t> selfAnnounceFrame(const MacAddress& mac) {
  std::vector<uint8_t> frame(60, 0);
  uint8_t* p = frame.data();
  std::fill(p, p + 6, 0xff);  // broadcast
  std::copy(mac.begin(), mac.end(), p + 6);
  storeBe16(p + 12, kEtherTypeRarp);
  p += kEthernetHeaderBytes;
  storeBe16(p, 1);                // hardware: Ethernet
  storeBe16(p + 2, kEtherTypeIpv4);
  p[4] = 6;                       // hardware address length
  p[5] = 4;                       // protocol address length
  storeBe16(p + 6, 3);            // RARP request ("reverse request")
  std::copy(mac.begin(), mac.end(), p + 8);   // sender hardware address; sender IP 0
  std::copy(mac.begin(), mac.end(), p + 18);  // target hardware address; target IP 0
  return frame;
}

}  // namespace strata::network
