// TLS for the live migration stream, with the NBD server's GnuTLS code
// (storage/nbd/nbd_tls.h): the destination (`strata run --incoming ...
// --tls-certs DIR`, the NBD server's directory layout) serves TLS on every
// channel; the source (`tls_ca`) checks that the destination's certificate
// chains to its CA and names the address it connects to. Each channel's TLS
// runs on a relay thread between the TCP socket and one end of a socketpair,
// so the stream code reads and writes a plain socket either way.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "storage/nbd/nbd_tls.h"
#include "vmm/vm_config.h"

namespace strata::vmm::migration {

// Destination: the TLS handshake on an accepted channel. A source sending its
// stream in the clear is told why in the clear ("ERR ...") and refused.
Result<UniqueFd> acceptTlsChannel(UniqueFd tcp, std::shared_ptr<const storage::nbd::TlsCredentials> credentials,
                                  const VmConfig& config, int ioSeconds);
// Source: the handshake as a client (credentials from TlsCredentials::loadAuthority).
Result<UniqueFd> connectTlsChannel(UniqueFd tcp, std::shared_ptr<const storage::nbd::TlsCredentials> authority,
                                   const std::string& host, const VmConfig& config, int ioSeconds);

}  // namespace strata::vmm::migration
