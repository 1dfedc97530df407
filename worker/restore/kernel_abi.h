// The kernel interfaces the restorer uses that Debian 12's linux-libc-dev (6.1) does not declare
// yet: userfaultfd's asynchronous write-protect mode (Linux 6.7) and the PAGEMAP_SCAN ioctl on
// /proc/PID/pagemap (Linux 6.7). Values and layouts are the kernel's user ABI
// (include/uapi/linux/userfaultfd.h and fs.h, Documentation/admin-guide/mm/pagemap.rst); each is
// defined only where the system headers lack it, so newer headers win.
#pragma once

#include <linux/ioctl.h>
#include <linux/userfaultfd.h>

#include <cstdint>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

namespace geysir::worker::restore::abi {

// Page categories PAGEMAP_SCAN reports.
constexpr uint64_t kPageWpAllowed = 1 << 0;  // in a VMA registered for asynchronous write-protect
constexpr uint64_t kPageWritten = 1 << 1;    // written since it was last write-protected
constexpr uint64_t kPageFile = 1 << 2;
constexpr uint64_t kPagePresent = 1 << 3;
constexpr uint64_t kPageSwapped = 1 << 4;
constexpr uint64_t kPagePfnZero = 1 << 5;

// PAGEMAP_SCAN flags.
constexpr uint64_t kScanWpMatching = 1 << 0;  // write-protect the pages it reports, atomically

struct PageRegion {
  uint64_t start;
  uint64_t end;
  uint64_t categories;
};

struct PmScanArg {
  uint64_t size;
  uint64_t flags;
  uint64_t start;
  uint64_t end;
  uint64_t walk_end;
  uint64_t vec;
  uint64_t vec_len;
  uint64_t max_pages;
  uint64_t category_inverted;
  uint64_t category_mask;
  uint64_t category_anyof_mask;
  uint64_t return_mask;
};

constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);

}  // namespace geysir::worker::restore::abi
