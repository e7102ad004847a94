#include "storage/nbd/nbd_protocol.h"

#include <cerrno>

namespace strata::storage::nbd {

uint32_t errnoToNbdError(int negativeErrno) {
  switch (-negativeErrno) {
    case EPERM:
    case EROFS:
    case EACCES:
      return kErrPerm;
    case ENOMEM:
      return kErrNoMem;
    case EINVAL:
      return kErrInval;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return kErrNoSpc;
    case EOVERFLOW:
      return kErrOverflow;
    case ENOTSUP:
      return kErrNotSup;
    case ESHUTDOWN:
      return kErrShutdown;
    default:
      return kErrIo;
  }
}

const char* optionName(uint32_t option) {
  switch (option) {
    case kOptExportName: return "NBD_OPT_EXPORT_NAME";
    case kOptAbort: return "NBD_OPT_ABORT";
    case kOptList: return "NBD_OPT_LIST";
    case kOptStartTls: return "NBD_OPT_STARTTLS";
    case kOptInfo: return "NBD_OPT_INFO";
    case kOptGo: return "NBD_OPT_GO";
    case kOptStructuredReply: return "NBD_OPT_STRUCTURED_REPLY";
    case kOptListMetaContext: return "NBD_OPT_LIST_META_CONTEXT";
    case kOptSetMetaContext: return "NBD_OPT_SET_META_CONTEXT";
    default: return "unknown option";
  }
}

const char* commandName(uint16_t command) {
  switch (command) {
    case kCmdRead: return "NBD_CMD_READ";
    case kCmdWrite: return "NBD_CMD_WRITE";
    case kCmdDisc: return "NBD_CMD_DISC";
    case kCmdFlush: return "NBD_CMD_FLUSH";
    case kCmdTrim: return "NBD_CMD_TRIM";
    case kCmdCache: return "NBD_CMD_CACHE";
    case kCmdWriteZeroes: return "NBD_CMD_WRITE_ZEROES";
    case kCmdBlockStatus: return "NBD_CMD_BLOCK_STATUS";
    default: return "unknown command";
  }
}

}  // namespace strata::storage::nbd
