// A small XML element tree for the request bodies of S3's rest-xml protocol
// (CreateBucketConfiguration, Tagging, CompleteMultipartUpload, Delete), parsed with expat.
//
// Namespaces are dropped from element names (<Tagging xmlns="..."> is "Tagging"); text is
// the concatenated character data of an element (entities decoded); attributes are ignored.
// Limits keep hostile bodies cheap: depth 32, 100,000 elements; DTDs and entity declarations
// are refused (no entity expansion attacks).
//
// Thread safety: values and a pure function.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace geysir::control::s3 {

struct XmlNode {
  std::string name;
  std::string text;
  std::vector<XmlNode> children;

  // The first child named `name`, or nullptr.
  const XmlNode* Child(std::string_view name) const;
  // Text of the first child named `name`, or nullopt.
  std::optional<std::string> ChildText(std::string_view name) const;
  // Every child named `name`, in order.
  std::vector<const XmlNode*> Children(std::string_view name) const;
};

// The root element of `xml`, or nullopt (with *error set) when it is not well-formed.
std::optional<XmlNode> ParseXml(std::string_view xml, std::string* error);

}  // namespace geysir::control::s3
