// The XML reader behind S3's request bodies (control/services/s3/s3_xml.h): CompleteMultipartUpload,
// DeleteObjects, PutBucketTagging... arrive as XML a client wrote.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "control/services/s3/s3_xml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace geysir::control::s3;
  std::string error;
  auto doc = ParseXml(std::string_view(reinterpret_cast<const char*>(data), size), &error);
  if (doc) {
    (void)doc->ChildText("Key");
    for (const XmlNode* part : doc->Children("Part")) (void)part->ChildText("ETag");
  } else if (error.empty()) {
    __builtin_trap();  // a refusal always says why
  }
  return 0;
}
